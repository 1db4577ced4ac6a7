"""opsledger desk: the service desk's web pages."""

from __future__ import annotations

import argparse
import logging


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    desk = sub.add_parser(
        "desk",
        help="serve the service desk (settings from flags or OPSLEDGER_DESK_* vars)",
    )
    desk.add_argument("--kubeconfig", help="the desk's kubeconfig ($OPSLEDGER_DESK_KUBECONFIG)")
    desk.add_argument("--port", type=int, help="port of the pages (default 8090)")
    desk.add_argument("--bind-address", help="address to listen on (default 0.0.0.0)")
    desk.add_argument(
        "--trusted-proxy",
        action="append",
        dest="trusted_proxies",
        help="address or network of the authenticating proxy (repeat; "
        "$OPSLEDGER_DESK_TRUSTED_PROXIES)",
    )
    desk.add_argument(
        "--anonymous-read", action="store_true", default=None, help="let anyone read the pages"
    )
    desk.set_defaults(func=_desk)


def _desk(args: argparse.Namespace) -> int:
    # Lazy: opsledger.main loads kopf, kubernetes, aiohttp and jinja2.
    from opsledger import main as operator_main  # noqa: PLC0415
    from opsledger.models.settings import DeskSettings  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)-20s %(message)s")
    base = DeskSettings.from_env()
    overrides = {
        k: v
        for k, v in {
            "kubeconfig": args.kubeconfig,
            "port": args.port,
            "bind_address": args.bind_address,
            "trusted_proxies": args.trusted_proxies,
            "anonymous_read": args.anonymous_read,
        }.items()
        if v is not None
    }
    operator_main.desk(DeskSettings.model_validate({**base.model_dump(), **overrides}))
    return 0
