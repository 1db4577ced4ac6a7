from pathlib import Path

from opsledger.domain.records import ci_record, record_path, to_yaml
from opsledger.domain.validate import validate_record, validate_tree
from opsledger.models.configitem import ConfigurationItemSpec

ROOT = Path(__file__).resolve().parents[3]

PATH = record_path("dev", "shop", "configurationitems", "web")
GOOD = to_yaml(
    ci_record(
        cluster="dev",
        namespace="shop",
        name="web",
        spec=ConfigurationItemSpec(),
        observed={"replicas": 2},
    )
)


def test_a_rendered_record_is_valid() -> None:
    assert validate_record(PATH, GOOD) == []


def test_a_bad_field_is_named_with_its_file() -> None:
    broken = GOOD.replace("criticality: medium", "criticality: extreme")
    [problem] = validate_record(PATH, broken)
    assert str(problem).startswith(f"{PATH}: spec.criticality:")
    assert "'low', 'medium', 'high' or 'critical'" in problem.message


def test_metadata_must_match_the_path() -> None:
    [problem] = validate_record(record_path("dev", "shop", "configurationitems", "api"), GOOD)
    assert problem.message == "metadata.name is 'web' but the path says 'api'"


def test_unknown_folders_and_broken_yaml() -> None:
    [unknown] = validate_record("clusters/dev/shop/widgets/x.yaml", GOOD)
    assert "unknown record folder 'widgets'" in unknown.message
    [yaml_error] = validate_record(PATH, "spec: [unclosed\n")
    assert yaml_error.message.startswith("not valid YAML")


def test_the_policy_files_are_checked_beside_the_records() -> None:
    examples = ROOT / "cmdb-repo-template" / "examples"
    files = [
        ("approval-policy.yaml", (examples / "approval-policy.yaml").read_text()),
        ("standard-changes/web-image.yaml", (examples / "web-image.yaml").read_text()),
        ("standard-changes/broken.yaml", "summary: x\nplan: {allow: [{pattern: x}]}\n"),
    ]
    [problem] = validate_tree(iter(files))
    assert problem.path == "standard-changes/broken.yaml"
    assert "plan.allow.0.path" in problem.message
    [policy] = validate_tree(iter([("approval-policy.yaml", "required: {high: 0}\n")]))
    assert "required.high must be at least 1" in policy.message
