"""The connection type `cdata` as Airflow itself sees it: provider info, the CLI and the UI's hook_meta."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from airflow.sdk import Connection

import airflow_provider_cdata as provider
from airflow_provider_cdata import get_provider_info
from airflow_provider_cdata.hooks import CDataHook, settings_from_connection

EXTRAS = ["account_id", "private_key_path", "token_lifetime", "timeout", "max_retries", "allow_insecure_http"]


def cdata_type() -> dict[str, Any]:
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "cdata"]
    return dict(entry)


def airflow_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
    )
    return env


def test_provider_info_passes_airflows_own_schema() -> None:
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_type_points_at_the_hook() -> None:
    entry = cdata_type()
    assert entry["hook-class-name"] == f"{CDataHook.__module__}.{CDataHook.__qualname__}"
    assert entry["hook-name"] == CDataHook.hook_name
    assert CDataHook.conn_type == "cdata"
    assert CDataHook.default_conn_name == "cdata_default"


def test_form_relabels_hides_and_declares_every_extra_the_hook_reads() -> None:
    entry = cdata_type()
    behaviour = entry["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port"}
    assert behaviour["relabeling"] == {
        "host": "API URL",
        "login": "Parent account ID",
        "password": "Private key (PEM)",
    }
    assert behaviour["placeholders"]["host"] == "https://cloud.cdata.com/api"
    assert list(entry["conn-fields"]) == EXTRAS


def test_declared_defaults_and_bounds_are_the_hooks() -> None:
    fields = {name: spec["schema"] for name, spec in cdata_type()["conn-fields"].items()}
    assert fields["timeout"]["default"] == provider.DEFAULT_TIMEOUT
    assert fields["max_retries"]["default"] == provider.DEFAULT_MAX_RETRIES
    assert (fields["max_retries"]["minimum"], fields["max_retries"]["maximum"]) == (
        0,
        provider.MAX_RETRIES_LIMIT,
    )
    assert fields["allow_insecure_http"]["default"] is False
    assert (
        fields["token_lifetime"]["minimum"],
        fields["token_lifetime"]["maximum"],
    ) == provider.TOKEN_LIFETIME_RANGE
    assert (fields["timeout"]["exclusiveMinimum"], fields["timeout"]["maximum"]) == (0, provider.MAX_TIMEOUT)
    # Airflow masks values of fields named like "token": the default lives in the description instead.
    assert "default" not in fields["token_lifetime"]
    description = cdata_type()["conn-fields"]["token_lifetime"]["description"]
    assert str(provider.DEFAULT_TOKEN_LIFETIME) in description


# Each numeric extra at and just past each of its bounds (and the form's other edge cases): the form's
# schema must accept exactly what the hook accepts.
BOUNDARY_VALUES: dict[str, list[Any]] = {
    "token_lifetime": [
        provider.TOKEN_LIFETIME_RANGE[0] - 1,
        *provider.TOKEN_LIFETIME_RANGE,
        provider.TOKEN_LIFETIME_RANGE[1] + 1,
        None,
    ],
    "max_retries": [-1, 0, provider.MAX_RETRIES_LIMIT, provider.MAX_RETRIES_LIMIT + 1, None],
    "timeout": [
        -1,
        0,
        0.001,
        1,
        provider.MAX_TIMEOUT,
        provider.MAX_TIMEOUT + 0.001,
        2 * provider.MAX_TIMEOUT,
        None,
    ],
    "allow_insecure_http": [True, False, None],
}


def hook_accepts(name: str, value: Any) -> bool:
    from airflow_provider_cdata.exceptions import CDataConfigError

    extra = json.dumps({name: value})
    conn = Connection(conn_id="bounds", conn_type="cdata", login="parent", extra=extra)
    try:
        settings_from_connection(conn)
    except CDataConfigError as exc:
        if exc.field != name:
            raise AssertionError(f"refused for {exc.field}, not {name}: {exc}") from None
        return False
    return True


def form_accepts(name: str, value: Any) -> bool:
    schema = cdata_type()["conn-fields"][name]["schema"]
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in BOUNDARY_VALUES.items() for value in values],
    ids=lambda item: str(item),
)
def test_the_form_and_the_hook_agree_at_every_bound(name: str, value: Any) -> None:
    assert form_accepts(name, value) == hook_accepts(name, value)


def test_the_boundary_values_reach_both_sides_of_every_bound() -> None:
    for name, values in BOUNDARY_VALUES.items():
        verdicts = {hook_accepts(name, value) for value in values}
        assert verdicts == ({True} if name == "allow_insecure_http" else {True, False}), name


def test_airflow_providers_hooks_lists_cdata(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "--output", "json"],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    hooks = json.loads(result.stdout)
    (cdata,) = [h for h in hooks if h["connection_type"] == "cdata"]
    assert cdata == {
        "connection_type": "cdata",
        "class": "airflow_provider_cdata.hooks.CDataHook",
        "conn_id_attribute_name": "cdata_conn_id",
        "package_name": "airflow-provider-cdata",
        "hook_name": "Powered by CData",
    }


HOOK_META = textwrap.dedent(
    """
    import json
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app("core")
    # The simple auth manager with every user an admin; the user is given directly so no metadata
    # database is needed to check a token.
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    with TestClient(app) as client:
        answer = client.get("/ui/connections/hook_meta")
    print("RESULT=" + json.dumps({"status": answer.status_code, "body": answer.json()}))
    """
)


@pytest.fixture(scope="module")
def hook_meta(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", HOOK_META],
        env=airflow_env(tmp_path_factory.mktemp("hook-meta")),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT=")]
    answer = json.loads(line.removeprefix("RESULT="))
    assert answer["status"] == 200
    (cdata,) = [item for item in answer["body"] if item["connection_type"] == "cdata"]
    return dict(cdata)


def test_airflow_ui_hook_meta_carries_the_standard_fields(hook_meta: dict[str, Any]) -> None:
    assert hook_meta["hook_class_name"] == "airflow_provider_cdata.hooks.CDataHook"
    assert hook_meta["hook_name"] == "Powered by CData"
    standard = hook_meta["standard_fields"]
    assert standard["host"] == {
        "hidden": False,
        "title": "API URL",
        "placeholder": "https://cloud.cdata.com/api",
    }
    assert standard["login"]["title"] == "Parent account ID"
    assert standard["password"]["title"] == "Private key (PEM)"
    assert standard["port"]["hidden"] is True
    assert standard["url_schema"]["hidden"] is True


def test_airflow_ui_hook_meta_carries_the_extra_fields_with_usable_defaults(
    hook_meta: dict[str, Any],
) -> None:
    extra = hook_meta["extra_fields"]
    assert list(extra) == EXTRAS
    assert {name: spec["schema"]["title"] for name, spec in extra.items()} == {
        name: spec["label"] for name, spec in cdata_type()["conn-fields"].items()
    }
    assert extra["token_lifetime"]["schema"]["type"] == ["integer", "null"]
    assert extra["allow_insecure_http"]["schema"]["type"] == ["boolean", "null"]
    values = {name: spec["value"] for name, spec in extra.items()}
    # not "***": a masked default would be saved into new connections
    assert values["account_id"] is values["private_key_path"] is values["token_lifetime"] is None
    # What a connection saved with the form's defaults gets: the hook's own defaults. (Airflow 3.1's form
    # has no number field: there the timeout is text, "30", which the hook reads as 30.)
    saved = Connection(conn_id="from_form", conn_type="cdata", login="parent", extra=json.dumps(values))
    got = settings_from_connection(saved)
    assert (got.timeout, got.max_retries, got.allow_insecure_http, got.token_lifetime) == (
        provider.DEFAULT_TIMEOUT,
        provider.DEFAULT_MAX_RETRIES,
        False,
        provider.DEFAULT_TOKEN_LIFETIME,
    )


class StandInField:
    """Records what a wtforms field class is given, as Airflow 3.1's api-server's stand-ins do."""

    def __init__(self, label: str, description: str | None = None, default: Any = None) -> None:
        self.field_class = type(self)
        self.label, self.description, self.default = label, description, default


def test_the_hook_serves_the_same_form_to_airflow_before_3_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1 draws the form from the hook's two methods: they return the one declaration."""
    wtforms = types.ModuleType("wtforms")
    for name in ("StringField", "IntegerField", "BooleanField", "PasswordField"):
        setattr(wtforms, name, type(name, (StandInField,), {}))
    monkeypatch.setitem(sys.modules, "wtforms", wtforms)

    widgets = CDataHook.get_connection_form_widgets()
    declared = cdata_type()["conn-fields"]
    assert list(widgets) == EXTRAS
    assert {name: w.field_class.__name__ for name, w in widgets.items()} == {
        "account_id": "StringField",
        "private_key_path": "StringField",
        "token_lifetime": "IntegerField",
        "timeout": "StringField",  # no float field there: text, which the hook reads as a number
        "max_retries": "IntegerField",
        "allow_insecure_http": "BooleanField",
    }
    assert {name: (w.label, w.description) for name, w in widgets.items()} == {
        name: (spec["label"], spec["description"]) for name, spec in declared.items()
    }
    assert {name: w.default for name, w in widgets.items()} == {
        "account_id": None,
        "private_key_path": None,
        "token_lifetime": None,
        "timeout": str(provider.DEFAULT_TIMEOUT),
        "max_retries": provider.DEFAULT_MAX_RETRIES,
        "allow_insecure_http": False,
    }


def test_the_hooks_field_behaviour_is_the_declared_one_in_airflows_shape() -> None:
    import airflow

    behaviour = CDataHook.get_ui_field_behaviour()
    declared = cdata_type()["ui-field-behaviour"]
    assert behaviour == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
    schema_file = Path(airflow.__file__).parent / "customized_form_field_behaviours.schema.json"
    jsonschema.validate(behaviour, json.loads(schema_file.read_text()))
