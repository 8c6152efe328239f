"""The demo behind ``scripts/demo.sh``: start the CData emulator, drive it, stop it.

It starts ``python -m airflow_provider_cdata.emulator --demo`` as a separate process on a free port,
then plays both sides of an onboarding: the product asks for a connect link, a simulated customer
completes the connect page, and the product lists, refreshes and deletes the connection.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import jwt
import requests

from airflow_provider_cdata.emulator import complete_flow


def start_emulator() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cdata.emulator", "--demo", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = ""
    for line in process.stdout:
        output += line
        if "serving" in line:
            break
    match = re.search(r"export AIRFLOW_CONN_CDATA_DEFAULT='(.*)'", output)
    if not match:
        process.kill()
        raise SystemExit(f"the emulator did not start:\n{output}")
    print(output.split("\n")[-2])
    return process, json.loads(match.group(1))


def call(connection: dict[str, Any], method: str, route: str, **kwargs: Any) -> requests.Response:
    now = int(time.time())
    claims = {
        "tokenType": "powered-by",
        "iat": now,
        "exp": now + 300,
        "iss": connection["login"],
        "sub": connection["extra"]["account_id"],
    }
    token = jwt.encode(claims, connection["password"], algorithm="RS256")
    answer = requests.request(
        method,
        f"{connection['host']}{route}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **kwargs,
    )
    answer.raise_for_status()
    return answer


def main() -> int:
    process, connection = start_emulator()
    try:
        created = call(
            connection,
            "POST",
            "/poweredby/connection/create",
            json={
                "dataSource": "Salesforce",
                "redirectURL": "https://app.example.com/onboarded",
                "name": "Acme",
            },
        ).json()
        link = created["redirectURL"].split("token=")[0] + "token=***"
        print(f"1. Create Connection returned a connect link: {link}")
        params = complete_flow(created["redirectURL"])
        print(f"2. The simulated customer saved the form; redirect parameters: {params}")
        listed = call(connection, "GET", "/poweredby/connection/list").json()["connections"]
        print(f"3. List Connections: {listed}")
        connection_id = params["cdata_connection_id"]
        call(connection, "DELETE", f"/poweredby/connection/{connection_id}/metadata")
        print(f"4. Cleared the metadata cache of {connection_id}")
        call(connection, "DELETE", f"/poweredby/connection/delete/{connection_id}")
        remaining = call(connection, "GET", "/poweredby/connection/list").json()["connections"]
        print(f"5. Deleted it; connections left: {remaining}")
    finally:
        process.terminate()
        process.wait(timeout=20)
    print("Emulator stopped. Demo OK.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
