"""One chat request with an image to a starting `lfm-edge serve` (tools/pi/in_root.sh): waits for /health, posts,
prints the answer; exit 1 on anything but a 200 with a message."""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def main(base: str, image: Path) -> int:
    deadline = time.monotonic() + 600  # loading under emulation takes a while
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                if response.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            print("the server did not come up", file=sys.stderr)
            return 1
        time.sleep(2)
    uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    content = [{"type": "image_url", "image_url": {"url": uri}}, {"type": "text", "text": "What is in the picture?"}]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 12, "temperature": 0}
    request = urllib.request.Request(
        f"{base}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        reply = json.load(response)
    print(json.dumps(reply["choices"][0]["message"]))
    return 0 if reply["choices"][0]["message"]["role"] == "assistant" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
