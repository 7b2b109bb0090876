"""Run INSIDE the test container: a closed-loop load on the worker for SECONDS, with
CONCURRENCY requests in flight, each asking for MAX_TOKENS tokens. Writes one JSON
document to OUT: each finished request's wall-clock end and its usage (the tokens
vLLM's OpenAI API reports), so the test has its own counts."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request


def main(url: str, seconds: float, concurrency: int, max_tokens: int, out: str) -> None:
    done: list[dict[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            i += 1
            body = json.dumps({"model": "standin/tiny", "prompt": f"client {n} request {i} " + "word " * (5 + i % 7),
                               "max_tokens": max_tokens}).encode()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    usage = json.loads(r.read())["usage"]
            except Exception as e:  # noqa: BLE001 - counted and reported, not hidden
                with lock:
                    errors.append(repr(e))
                continue
            with lock:
                done.append({"end": time.time(), "prompt": usage["prompt_tokens"],
                             "completion": usage["completion_tokens"]})

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as f:
        json.dump({"requests": done, "errors": errors}, f)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
