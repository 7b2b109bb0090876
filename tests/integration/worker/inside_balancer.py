"""A load balancer's view of a draining worker, run inside the test container.

It health-checks GET /workers/NAME/ready on the agent every --interval and sends
a short completion to the worker while the last check said 200, as HAProxy or
Envoy would. Once readiness has said 503 for --rogue-after seconds it sends one
request anyway, as a client that ignores the balancer would. Prints one JSON line:
when readiness first said 503, every response's finish_reason, the rogue's.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def complete(url: str) -> str:
    body = json.dumps({"model": "standin/tiny", "prompt": "hi", "max_tokens": 2}).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["choices"][0]["finish_reason"]
    except (urllib.error.URLError, OSError) as e:
        return f"error: {e}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ready-url", required=True)
    p.add_argument("--worker-url", required=True)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--rogue-after", type=float, required=True)
    p.add_argument("--duration", type=float, default=60)
    a = p.parse_args()
    sent: list[tuple[float, str]] = []
    first_503 = None
    rogue = None
    end = time.time() + a.duration
    while time.time() < end:
        if ready(a.ready_url):
            if first_503 is None:
                t = time.time()
                sent.append((t, complete(a.worker_url)))
        elif first_503 is None:
            first_503 = time.time()
        elif time.time() - first_503 >= a.rogue_after:
            rogue = complete(a.worker_url)
            break
        time.sleep(a.interval)
    print(json.dumps({"first_503": first_503, "sent": sent, "rogue": rogue}))


if __name__ == "__main__":
    main()
