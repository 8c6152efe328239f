"""How the provider gives a secret to Airflow's masker, with each kind of supervisor (issue 16, defect 16).

A real supervisor (another process) is told with a MaskSecret message, as Airflow's ``mask_secret``
does. The in-process one of dag.test() and `airflow tasks test` logs every message it is sent, whole,
at DEBUG, and shares the task's masker: it is not sent the secret. On an Airflow without that class
the provider falls back to plain ``mask_secret``. The supervisors here are stand-ins that record what
reaches them: no server can play a supervisor. The end-to-end proof is the leak scan
(tests/test_reliability_leaks.py), which runs tasks under dag.test() and `airflow tasks test` at DEBUG.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk._shared.secrets_masker import redact
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import GetVariable

from airflow_provider_cdata import _compat
from airflow_provider_cdata._masking import amask, mask, private_key_lines

SECRET = "a-secret-of-the-provider-4f1c"
ASYNC_SECRET = "another-one-of-the-trigger-9b2e"


class Recorder:
    """Stands for a supervisor: records each message it is sent."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    def _handle_request(self, msg: Any, log: Any, req_id: int) -> None:
        self.received.append(msg)


class SubprocessComms:
    """Stands for the comms to a real supervisor in another process (sync and async)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)

    async def asend(self, msg: Any) -> None:
        self.sent.append(msg)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], Any]:
    """Install a supervisor comms for the test: ``install(comms)``."""

    def install(value: Any) -> Any:
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", value, raising=False)
        return value

    return install


def in_process_comms() -> tuple[Any, Recorder]:
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

    supervisor = Recorder()
    return InProcessSupervisorComms(supervisor=supervisor), supervisor  # type: ignore[arg-type]


def test_in_process_the_secret_is_masked_here_and_not_sent(comms: Any) -> None:
    in_process, supervisor = in_process_comms()
    comms(in_process)
    assert _compat.in_process_supervisor()
    mask(SECRET)
    asyncio.run(amask(ASYNC_SECRET))
    assert supervisor.received == [], "nothing reached the in-process supervisor (nor its DEBUG log)"
    assert redact(f"x {SECRET} y") == "x *** y"
    assert redact(ASYNC_SECRET) == "***"
    assert task_runner.SUPERVISOR_COMMS is in_process, "the comms is put back"


def test_in_process_other_messages_still_reach_the_supervisor(comms: Any) -> None:
    """Inside secrets_stay_in_process() (the hook reads its connection there) only MaskSecret stays."""
    in_process, supervisor = in_process_comms()
    comms(in_process)
    with _compat.secrets_stay_in_process():
        _compat.mask_secret(SECRET)  # Airflow's own call, as when it reads a connection's password
        in_process.messages.append(None)  # the supervisor's answer to the next request
        task_runner.SUPERVISOR_COMMS.send(GetVariable(key="k"))
    assert [type(m).__name__ for m in supervisor.received] == ["GetVariable"]
    assert task_runner.SUPERVISOR_COMMS is in_process
    assert redact(SECRET) == "***"


def test_a_real_supervisor_is_sent_the_secret_as_airflow_does(comms: Any) -> None:
    subprocess_comms = comms(SubprocessComms())
    assert not _compat.in_process_supervisor()
    mask(SECRET)
    asyncio.run(amask(ASYNC_SECRET))
    assert [(type(m).__name__, m.value) for m in subprocess_comms.sent] == [
        ("MaskSecret", SECRET),
        ("MaskSecret", ASYNC_SECRET),
    ]
    assert redact(SECRET) == "***"


def test_an_airflow_without_the_in_process_comms_falls_back_to_mask_secret(
    comms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another Airflow 3.x: the class is not there (or not where 3.3 keeps it): plain mask_secret."""
    in_process, supervisor = in_process_comms()
    comms(in_process)
    supervisor_module = sys.modules["airflow.sdk.execution_time.supervisor"]
    monkeypatch.delattr(supervisor_module, "InProcessSupervisorComms")
    assert not _compat.in_process_supervisor()
    in_process.messages.append(None)  # the supervisor's answer to MaskSecret, which it is sent here
    with _compat.secrets_stay_in_process():
        assert task_runner.SUPERVISOR_COMMS is in_process, "nothing is swapped"
    mask(SECRET)
    assert [type(m).__name__ for m in supervisor.received] == ["MaskSecret"]
    assert redact(SECRET) == "***"


def test_no_supervisor_at_all_masks_locally(comms: Any) -> None:
    comms(None)
    mask(SECRET)
    assert redact(SECRET) == "***"


def test_the_key_is_registered_line_by_line(keys: Any, tmp_path: Any) -> None:
    body = [line for line in keys.private_pem.splitlines() if not line.startswith("-----")]
    assert private_key_lines(keys.private_pem) == body
    escaped = keys.private_pem.replace("\n", "\\n")  # a PEM pasted into JSON with literal \n
    assert private_key_lines(escaped) == body
    key_file = tmp_path / "cdata.pem"
    key_file.write_text(keys.private_pem)
    assert private_key_lines(None, str(key_file)) == body
    assert private_key_lines(None, str(tmp_path / "gone.pem")) == []
