"""``${VAR}`` expansion in settings: nested defaults, what counts as from the environment, unset names."""
import pytest

from engine.env import UnsetVariable, expand

ENVIRON = {"SET": "v", "EMPTY": ""}


@pytest.mark.parametrize("text, expected, from_environment", [
    ("plain", "plain", False),
    ("${SET}", "v", True),
    ("${EMPTY:-x}", "", True),
    ("${UNSET:-x}", "x", False),
    ("${UNSET:-}", "", False),
    # a default holding a reference expands it, however deep; it was once cut at the first "}"
    ("${P:-out/${P2:-x}.ndjson}", "out/x.ndjson", False),
    ("${P:-a/${SET}/b}", "a/v/b", True),
    ("${P:-${Q:-${SET}}}", "v", True),
    # an unused default is never expanded, so an unset name in it is no error
    ("${SET:-${UNSET}}", "v", True),
    ("pre ${SET} ${UNSET:-}end", "pre v end", True),
    ("${A:-x}y}", "xy}", False),
    # what is not a reference is kept as written
    ("${A:-abc", "${A:-abc", False),
    ("${1X}", "${1X}", False),
    ("$${SET}", "$v", True),
    ("${", "${", False),
])
def test_expand(text, expected, from_environment):
    assert expand(text, ENVIRON) == (expected, from_environment)


@pytest.mark.parametrize("text, name, offset", [
    ("${UNSET}", "UNSET", 0),
    ("ab${P:-${UNSET}}", "UNSET", 7),
    ("${P:-x/${Q:-${UNSET}}}", "UNSET", 12),
])
def test_unset_without_default_names_the_variable_and_where(text, name, offset):
    with pytest.raises(UnsetVariable) as raised:
        expand(text, ENVIRON)
    assert (raised.value.name, raised.value.offset) == (name, offset)
    assert text[offset:].startswith("${" + name)


def test_a_secret_is_masked_in_an_answer_that_writes_its_slashes_escaped():
    """PHP's json_encode writes "/" as "\\/": a token with slashes, quoted by such a server, was shown."""
    from engine.env import Secrets

    secrets = Secrets(["sk/live+Zm9vYmFy/YmF6="])
    assert secrets.mask('{"token": "sk\\/live+Zm9vYmFy\\/YmF6="}') == '{"token": "********"}'


def test_basic_auth_forms_pair_secrets_with_user_names_only_so_masking_stays_cheap():
    """Every secret after every text of the settings made 500 texts to look for in each printed line for a
    webhook with 20 secret headers, and a dry run a third slower."""
    from types import SimpleNamespace

    from engine.env import Secrets, Settings, basic_credentials

    headers = {f"X-H{i}": f"value-number-{i}-abcdefgh" for i in range(20)}
    webhook = Settings({"url": "http://x", "headers": headers}, {"headers"})
    oauth = Settings({"oauth": {"client_id": "switchyard", "client_secret": "supersecretvalue1"}}, {"oauth"})
    secrets = Secrets.of([SimpleNamespace(settings=webhook), SimpleNamespace(settings=oauth)])
    assert len(secrets.values) < 150
    assert secrets.mask(basic_credentials("switchyard", "supersecretvalue1")) == "********"
