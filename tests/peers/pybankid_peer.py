"""An independent BankID client (pybankid, from PyPI) against a running bankid-sim.

pybankid hard-codes BankID's hosts and roots, so after constructing its client we point its
endpoint attributes at the simulator and give its httpx client the simulator's CA. Everything
else (request bodies, headers, response parsing, error classes) is pybankid's own.

usage: python pybankid_peer.py BASE_URL CERTS_DIR
"""

import ssl
import sys
import time
from urllib.parse import urljoin

import httpx
from bankid import BankIDClient
from bankid.exceptions import AlreadyInProgressError, InvalidParametersError

ANNA = "198503121116"  # completes
INGRID = "197204158880"  # slow: stays pending for a long time
DAVID = "196601014449"  # never opens the app


def client_for(base_url: str, certs: str) -> BankIDClient:
    cert = (f"{certs}/client.pem", f"{certs}/client.key")
    c = BankIDClient(certificates=cert, test_server=True, request_timeout=10)
    c.api_url = base_url
    for name in ("auth", "phone/auth", "sign", "phone/sign", "collect", "cancel"):
        attr = "_" + name.replace("/", "_") + "_endpoint"
        setattr(c, attr, urljoin(base_url, name))
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    c.client = httpx.Client(cert=cert, headers={"Content-Type": "application/json"}, verify=ctx, timeout=10)
    return c


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def main() -> None:
    base_url, certs = sys.argv[1], sys.argv[2]
    c = client_for(base_url, certs)

    # phone_auth + collect to completion
    order = c.phone_authenticate(personal_number=ANNA, call_initiator="user", user_visible_data="Hej från pybankid")
    ref = order["orderRef"]
    hints = []
    for _ in range(400):
        r = c.collect(ref)
        if r["status"] != "pending":
            break
        if not hints or hints[-1] != r["hintCode"]:
            hints.append(r["hintCode"])
        time.sleep(0.02)
    check(r["status"] == "complete", f"phone_authenticate + collect completes (hints {hints})")
    check(r["completionData"]["user"]["personalNumber"] == ANNA, "completionData.user.personalNumber")
    check("userCallConfirm" in hints, "the phone hint userCallConfirm was seen")

    # collecting a final order again → invalidParameters
    try:
        c.collect(ref)
        check(False, "second collect of a final order is refused")
    except InvalidParametersError:
        check(True, "second collect of a final order is refused")

    # cancel
    order = c.phone_authenticate(personal_number=DAVID, call_initiator="RP")
    check(c.cancel(order["orderRef"]) is True, "cancel of a pending order")
    try:
        c.cancel(order["orderRef"])
        check(False, "cancel twice is refused")
    except InvalidParametersError:
        check(True, "cancel twice is refused")

    # alreadyInProgress: both orders aborted
    first = c.phone_authenticate(personal_number=INGRID, call_initiator="user")
    try:
        c.phone_authenticate(personal_number=INGRID, call_initiator="user")
        check(False, "a second order for the same person raises AlreadyInProgressError")
    except AlreadyInProgressError:
        check(True, "a second order for the same person raises AlreadyInProgressError")
    r = c.collect(first["orderRef"])
    check(r["status"] == "failed" and r["hintCode"] == "cancelled", "the first order collects as failed/cancelled")
    print("pybankid peer: all checks passed")


if __name__ == "__main__":
    main()
