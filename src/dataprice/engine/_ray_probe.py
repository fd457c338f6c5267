"""Run in a child process by the Ray engine: can the Ray GCS at ``argv[1]`` be reached?

Prints ``ready`` once Ray is imported, then ``ok``, ``auth`` (a GCS answered but wants a
token) or the error; exit status 3 means "cannot tell" (Ray's API changed).
"""

import sys

try:
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # private, untyped
except Exception:
    sys.exit(3)
print("ready", flush=True)
try:
    GcsClient(address=sys.argv[1])
except (TypeError, AttributeError, NameError):
    sys.exit(3)
except Exception as exc:
    if type(exc).__name__ == "AuthenticationError":  # only a GCS says so
        print("auth", flush=True)
        sys.exit(0)
    print(type(exc).__name__ + ": " + " ".join(str(exc).split())[:160], flush=True)
    sys.exit(1)
print("ok", flush=True)
