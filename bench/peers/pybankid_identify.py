"""N identifications with pybankid (PyPI), CONCURRENCY at a time: phone_authenticate, then
collect every POLL seconds until final. One pybankid client per worker thread, reused.

pybankid hard-codes BankID's hosts, so each client's endpoint attributes and its httpx client
(with the simulator's CA) are pointed at the simulator; requests and parsing are pybankid's.

usage: python pybankid_identify.py BASE_URL CERTS_DIR PNR_FILE CONCURRENCY POLL_SECONDS
"""

import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import httpx
from bankid import BankIDClient


def client_for(base_url, certs):
    cert = (f"{certs}/client.pem", f"{certs}/client.key")
    c = BankIDClient(certificates=cert, test_server=True, request_timeout=10)
    c.api_url = base_url
    for name in ("auth", "phone/auth", "sign", "phone/sign", "collect", "cancel"):
        setattr(c, "_" + name.replace("/", "_") + "_endpoint", urljoin(base_url, name))
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    c.client = httpx.Client(cert=cert, headers={"Content-Type": "application/json"}, verify=ctx, timeout=10)
    return c


def main():
    base, certs, pnr_file, conc, poll = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    pnrs = [l.strip() for l in open(pnr_file) if l.strip()]
    local = threading.local()

    def identify(pnr):
        if not hasattr(local, "client"):
            local.client = client_for(base, certs)
        c = local.client
        ref = c.phone_authenticate(personal_number=pnr, call_initiator="user")["orderRef"]
        while True:
            time.sleep(poll)
            r = c.collect(ref)
            if r["status"] != "pending":
                return r["status"] == "complete"

    with ThreadPoolExecutor(max_workers=conc) as pool:
        ok = sum(pool.map(identify, pnrs))
    print(f"complete={ok}")
    sys.exit(0 if ok == len(pnrs) else 1)


if __name__ == "__main__":
    main()
