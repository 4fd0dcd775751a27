"""`genforge serve RUN_DIR... [--detector DET_DIR]`: a REST API and a web page for trained models.

Every limit is a ServeConfig field of the same name (serve/config.py), so a bad value meets the
same one-line refusal as in Python; the models are loaded before the port is opened, so a bad
run directory is one line too, and nothing listens until the server can answer.
"""

from __future__ import annotations

import os
import socket

from ..errors import GenforgeError

GRACE_S = 10  # Ctrl-C / SIGTERM: requests still running get this long to finish before they are cut
# flag -> ServeConfig field, for the flags passed on as text for ServeConfig's rules to check
LIMITS = {"max_batch": "max_batch", "max_wait_ms": "max_wait_ms", "queue_size": "queue_size",
          "max_body_mb": "max_body_mb", "max_pixels": "max_pixels", "max_images": "max_images",
          "job_ttl": "job_ttl_s", "max_jobs": "max_jobs", "workers": "workers", "port": "port"}


def add_parser(sub) -> None:
    from ..serve.config import ServeConfig as C
    from . import device_name
    p = sub.add_parser("serve", help="serve models over HTTP: a REST API and a web page", description=(
        "Serve the models of the run directories (and a detector) at http://HOST:PORT: a web page at /, the "
        "API under /v1 (schema at /openapi.json, docs at /docs), /healthz, /readyz and /metrics. Listens on "
        "127.0.0.1 only unless --host says otherwise, which needs an API key. Ctrl-C or SIGTERM stops it "
        "after the requests in flight are answered."))
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to serve; each is named by its "
                   "basename in the API")
    p.add_argument("--detector", metavar="DET_DIR", help="a detector (`genforge detect train`) for /v1/detect and "
                   "as the edits' realism judge")
    p.add_argument("--host", default=C.host, help=f"address to listen on (default {C.host}: this machine only; "
                   "any other needs an API key)")
    p.add_argument("--port", default=str(C.port), help=f"port (default {C.port}; 0: any free one)")
    p.add_argument("--api-key", help="require this key (16+ characters) on /v1 and /metrics, as "
                   "Authorization: Bearer KEY or X-API-Key: KEY (default: $GENFORGE_API_KEY, else none)")
    p.add_argument("--max-batch", help=f"images gathered into one forward pass (default {C.max_batch})")
    p.add_argument("--max-wait-ms", help="how long a request waits for others to join its batch "
                   f"(default {C.max_wait_ms:g}; 0: no waiting)")
    p.add_argument("--queue-size", help=f"requests waiting per model before 429 (default {C.queue_size})")
    p.add_argument("--max-body-mb", help=f"largest request body, in MB, before 413 (default {C.max_body_mb:g})")
    p.add_argument("--max-pixels", help="largest uploaded image, in pixels, read from its header before "
                   f"decoding (default {C.max_pixels})")
    p.add_argument("--max-images", help=f"images per request: sample n, uploaded files (default {C.max_images})")
    p.add_argument("--job-ttl", help=f"seconds a finished job's result is kept (default {C.job_ttl_s:g})")
    p.add_argument("--max-jobs", help=f"jobs kept at once before 429 (default {C.max_jobs})")
    p.add_argument("--workers", help=f"threads that run the models (default {C.workers})")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN", help="let pages of this origin "
                   "(https://example.org) call the API (CORS); repeat for more; default none")
    p.add_argument("--allowed-host", action="append", metavar="NAME", help="without an API key the server answers "
                   "only requests addressed to 127.0.0.1, localhost or [::1] (a page whose domain is made to point "
                   "at this machine is refused: DNS rebinding); add a name it may be called by; repeat for more")
    p.add_argument("--device", type=device_name, default="cpu", help="run the models on cpu, cuda or cuda:N")
    p.add_argument("--watermark", metavar="MARK_DIR", help="embed this watermark's key (genforge watermark train) "
                   "in every image made for the models of its image shape, and read it in /v1/detect's uploads")
    p.add_argument("--watermark-key", metavar="HEX", help="the key to embed and read (default: the watermark's own)")
    p.set_defaults(run=run)


def serve_config(args):
    """The ServeConfig the flags ask for (ConfigError in one line for a bad value)."""
    from ..serve.config import ServeConfig
    given = {field: getattr(args, flag) for flag, field in LIMITS.items() if getattr(args, flag) is not None}
    key = args.api_key if args.api_key is not None else os.environ.get("GENFORGE_API_KEY") or None
    return ServeConfig(host=args.host, api_key=key, device=args.device, cors_origins=args.cors_origin or [],
                       allowed_hosts=args.allowed_host or [], **given)


def server_mark(args):
    """The Marker of --watermark (provenance/watermark/marker.py), or None; a bad directory or key is
    one line."""
    if args.watermark_key and not args.watermark:
        raise GenforgeError("--watermark-key is the key to embed: give the watermark too (--watermark DIR)")
    if not args.watermark:
        return None
    from ..provenance.watermark import Marker
    return Marker(args.watermark, args.watermark_key)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, opened here rather than by uvicorn so that the port is known
    (port 0 picks a free one) and a port in use is one line (OSError), not a log and exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on connections whose socket says
    # it is TCP. Without it, on a kept-alive connection the body of an answer (a second write after
    # the headers) waited for the client's delayed ACK: 40 ms added to every request after the first.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_server(app):
    """The uvicorn server of `app`: warnings only in the log (no access log), and a graceful stop that
    lets requests in flight finish (GRACE_S) before the app's shutdown stops its workers."""
    import uvicorn
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACE_S,
                                         server_header=False, proxy_headers=False))


def address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise GenforgeError("genforge serve needs FastAPI and uvicorn: pip install 'genforge[serve]'") from None
    from ..serve.app import create_app
    from ..serve.registry import Registry
    config = serve_config(args)  # a bad value or --host without a key: refused before any model loads
    watermark = server_mark(args)
    registry = Registry.load(args.run_dirs, args.detector, config.device)
    sock = listening_socket(config.host, config.port)
    server = make_server(create_app(config, registry, watermark))
    port = sock.getsockname()[1]
    print(f"genforge: serving {len(registry.names)} model(s) at {address(config.host, port)}  (Ctrl-C stops)",
          flush=True)
    if watermark is not None:
        marked = [name for name in registry.names if watermark.fits(registry.get(name).image_shape)]
        print(f"genforge: watermark {args.watermark} (key {watermark.key}) marks the images of "
              f"{', '.join(marked) or 'none of the models (their image shape differs)'}", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled once it has stopped cleanly
        pass
    print("genforge: stopped", flush=True)
    return 0
