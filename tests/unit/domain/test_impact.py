from hypothesis import given
from hypothesis import strategies as st

from opsledger.domain.impact import ImpactGraph, ImpactNode, qualify, render_tree

SHOP = {
    "shop/orders-db": [],
    "shop/web": [("dependsOn", "orders-db"), ("runsOn", "infra/node-1")],
    "shop/web-svc": [("exposes", "web")],
    "shop/ingress": [("dependsOn", "web-svc")],
    "shop/storefront": [],
    "shop/cart": [("partOf", "storefront"), ("dependsOn", "orders-db")],
}


def test_dependents_are_transitive() -> None:
    graph = ImpactGraph(SHOP)
    assert graph.dependents("shop/orders-db") == {
        "shop/web",
        "shop/web-svc",
        "shop/ingress",
        "shop/cart",
        "shop/storefront",
    }
    assert graph.dependents("infra/node-1") == {"shop/web", "shop/web-svc", "shop/ingress"}
    assert graph.dependents("shop/ingress") == set()


def test_part_of_points_impact_at_the_whole() -> None:
    graph = ImpactGraph(SHOP)
    assert graph.dependents("shop/cart") == {"shop/storefront"}
    assert graph.dependents("shop/storefront") == set()


def test_cycles_terminate_and_exclude_the_item_itself() -> None:
    graph = ImpactGraph({"a/x": [("dependsOn", "y")], "a/y": [("dependsOn", "x")]})
    assert graph.dependents("a/x") == {"a/y"}


def test_the_tree_renders_each_item_once() -> None:
    text = render_tree(ImpactGraph(SHOP).tree("shop/orders-db"), {"shop/orders-db": "Database"})
    assert text.splitlines() == [
        "shop/orders-db (Database)",
        "├── dependsOn → shop/cart",
        "│   └── partOf → shop/storefront",
        "└── dependsOn → shop/web",
        "    └── exposes → shop/web-svc",
        "        └── dependsOn → shop/ingress",
    ]


def test_targets_qualify_into_the_item_namespace() -> None:
    assert qualify("db", "shop") == "shop/db"
    assert qualify("infra/db", "shop") == "infra/db"


names = st.sampled_from([f"n/{c}" for c in "abcdefgh"])


@given(
    st.dictionaries(
        names,
        st.lists(
            st.tuples(
                st.sampled_from(["dependsOn", "partOf"]), names.map(lambda n: n.split("/")[1])
            )
        ),
    )
)
def test_the_tree_holds_exactly_the_dependents(graph_data: dict) -> None:
    graph = ImpactGraph(graph_data)
    for item in {f"n/{c}" for c in "abcdefgh"}:
        assert sorted(_descendants(graph.tree(item))) == sorted(graph.dependents(item))


def _descendants(node: ImpactNode) -> list[str]:
    return [d for child in node.children for d in (child.item, *_descendants(child))]
