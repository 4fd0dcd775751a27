"""`genforge serve`'s core API through FastAPI's TestClient: the models, sampling (its formats,
its seeds, its micro-batching), the test images, detection, the operator's routes, and every
refusal (401, 403, 404, 405, 409, 413, 415, 422, 429, 500) in the one error body. Plus the
command line's refusals and a real uvicorn server that drains a request in flight as it stops.

The models are the session's tiny `serve_runs` (a cvae, a cgan and a detector trained a few steps):
what is checked is the server's behaviour, not the models' quality."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from genforge.cli import main  # noqa: E402
from genforge.data import load_dataset  # noqa: E402
from genforge.errors import ConfigError, DataError  # noqa: E402
from genforge.serve.app import INTERNAL, create_app  # noqa: E402
from genforge.serve.batching import MicroBatcher  # noqa: E402
from genforge.serve.config import ServeConfig  # noqa: E402

LOCAL = "http://127.0.0.1"  # a keyless server answers only requests addressed to a local name
from genforge.serve.errors import ApiError  # noqa: E402
from genforge.serve.limits import grid_png  # noqa: E402
from genforge.serve.registry import Registry  # noqa: E402

KEY = "k" * 24


@pytest.fixture(scope="module")
def registry(serve_runs):
    return Registry.load([serve_runs["cvae"], serve_runs["cgan"]], serve_runs["detector"])


@pytest.fixture(scope="module")
def client(registry):
    with TestClient(create_app(ServeConfig(max_images=32), registry), base_url=LOCAL) as c:
        yield c


def serve(registry, **config) -> TestClient:
    return TestClient(create_app(ServeConfig(**config), registry), base_url=LOCAL)


def error(response, status: int, field: str | None = None) -> str:
    """The message of an error answer, after checking its status, body shape and field."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert body["error"]["field"] == field
    return body["error"]["message"]


def png(array: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def pixels(data: bytes) -> bytes:
    """The decoded pixels of PNG bytes: what "the same images" means, as each PNG also carries its
    own signed provenance manifest (with the time it was made)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none: what a decompression bomb's
    header looks like (decoding it would fail; the server must refuse it before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IEND", b"")


# --- models ------------------------------------------------------------------------------------------
def test_models_are_listed_with_what_they_can_do(client):
    body = client.get("/v1/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert list(models) == ["cvae", "cgan"]
    assert models["cvae"]["image_shape"] == [1, 28, 28] and models["cvae"]["conditional"]
    assert models["cvae"]["classes"] == [str(i) for i in range(10)]
    assert {"sample", "classes", "encode", "detect"} <= set(models["cvae"]["capabilities"])
    assert "encode" not in models["cgan"]["capabilities"]  # a GAN inverts by latent search
    assert body["detector"] == {"image_shape": [1, 28, 28], "threshold": 0.5}
    assert client.get("/v1/models/cgan").json() == models["cgan"]


def test_an_unknown_model_is_404_naming_the_loaded_ones(client):
    message = error(client.get("/v1/models/../../etc"), 404)  # a path-like name reaches no file: no route
    assert "no such route" in message
    message = error(client.post("/v1/models/nope/sample", json={"n": 1}), 404, "name")
    assert message == "unknown model 'nope'; loaded: cvae, cgan"
    assert error(client.get("/v1/models/nope"), 404, "name") == message


def test_unknown_routes_and_methods_answer_the_error_body(client):
    assert "no such route" in error(client.get("/v2/models"), 404)
    response = client.delete("/v1/models")
    assert "DELETE is not allowed" in error(response, 405) and response.headers["allow"] == "GET"


def test_model_names_are_basenames_made_unique(tmp_path):
    from genforge.serve.registry import unique_names
    assert unique_names([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "run-2"]) == ["run", "run-2",
                                                                                                  "run-2-2"]


# --- sampling ----------------------------------------------------------------------------------------
def test_sample_as_json_grid_and_npz_echoes_the_seed(client, registry):
    body = client.post("/v1/models/cvae/sample", json={"n": 3, "seed": 5, "label": "7"}).json()
    assert body["seed"] == 5 and body["labels"] == [7, 7, 7] and len(body["images"]) == 3
    import base64
    first = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert first.format == "PNG" and first.size == (28, 28)

    expected = grid_png(registry.get("cvae").sample(3, seed=5, labels=7))  # what genforge.load().sample gives
    grid = client.post("/v1/models/cvae/sample", json={"n": 3, "seed": 5, "label": 7, "format": "grid"})
    assert grid.headers["content-type"] == "image/png" and pixels(grid.content) == pixels(expected)
    assert grid.headers["x-seed"] == "5" and grid.headers["x-labels"] == "7,7,7"
    assert pixels(base64.b64decode(body["grid"])) == pixels(expected)
    by_accept = client.post("/v1/models/cvae/sample", json={"n": 3, "seed": 5, "label": 7},
                            headers={"accept": "application/json;q=0.5, image/png"})
    assert pixels(by_accept.content) == pixels(expected)

    npz = client.post("/v1/models/cgan/sample", json={"n": 4, "seed": 2}, headers={"accept": "application/x-npz"})
    assert npz.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(npz.content), allow_pickle=False) as z:
        assert z["images"].shape == (4, 28, 28, 1) and z["images"].dtype == np.uint8
        assert int(z["seed"]) == 2 and z["labels"].tolist() == [int(v) for v in npz.headers["x-labels"].split(",")]


def test_a_random_seed_is_echoed_and_reproduces_the_images(client):
    first = client.post("/v1/models/cgan/sample", json={"n": 2, "format": "grid"})
    seed = int(first.headers["x-seed"])
    again = client.post("/v1/models/cgan/sample", json={"n": 2, "seed": seed, "format": "grid"})
    assert pixels(again.content) == pixels(first.content)


def test_same_seed_same_images_alone_or_batched_with_others(registry):
    # a long wait makes the concurrent requests surely meet in one batch, even on a busy machine
    with serve(registry, max_wait_ms=1000, max_batch=64) as c:
        alone = c.post("/v1/models/cvae/sample", json={"n": 3, "seed": 7, "format": "grid"}).content
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda seed: c.post("/v1/models/cvae/sample", json={
                "n": 3, "seed": seed, "format": "grid"}), [7, 8, 9, 10]))
        assert [a.status_code for a in answers] == [200] * 4
        assert pixels(answers[0].content) == pixels(alone)
        assert len({pixels(a.content) for a in answers}) == 4  # each seed its own images
        text = c.get("/metrics").text
    count = metric(text, 'genforge_batch_requests_count{batcher="cvae/sample"}')
    total = metric(text, 'genforge_batch_requests_sum{batcher="cvae/sample"}')
    assert count < 5 and total == 5, (count, total)  # 5 requests in fewer forward passes: some were gathered
    assert metric(text, 'genforge_batch_images_sum{batcher="cvae/sample"}') == 15


def metric(text: str, name: str) -> float:
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize("body, field, says", [
    ({"n": 0}, "n", "greater than or equal to 1"),
    ({"n": 33}, "n", "at most 32"),
    ({"n": 1, "temperature": 0}, "temperature", "greater than 0"),
    ({"n": 1, "temperature": "x"}, "temperature", "valid number"),
    ({"n": 1, "label": "cat"}, "label", "no class 'cat'"),
    ({"n": 1, "label": 12}, "label", "12 does not exist"),
    ({"n": 1, "seed": -1}, "seed", "greater than or equal to 0"),
    ({"n": 1, "format": "gif"}, "format", "'grid', 'json' or 'npz'"),
    ({"n": 1, "colour": "red"}, "colour", "Extra inputs are not permitted"),
])
def test_a_bad_sample_field_is_422_naming_it(client, body, field, says):
    message = error(client.post("/v1/models/cvae/sample", json=body), 422, field)
    assert message.startswith(f"{field}: ") and says in message


def test_bad_json_and_infinite_numbers_are_422(client):
    response = client.post("/v1/models/cvae/sample", content=b'{"n": 1, "temperature": Infinity}',
                           headers={"content-type": "application/json"})
    assert "finite" in error(response, 422, "temperature")
    response = client.post("/v1/models/cvae/sample", content=b'{"n": ', headers={"content-type": "application/json"})
    assert "JSON" in error(response, 422, "body")


# --- test images -------------------------------------------------------------------------------------
def test_test_images_are_the_data_sets_test_split(client):
    body = client.get("/v1/models/cvae/test-images", params={"start": 3, "n": 4}).json()
    test = load_dataset("mnist", "test")
    assert body["indices"] == [3, 4, 5, 6] and body["labels"] == test.labels[3:7].tolist()
    import base64
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][2]))))
    assert np.array_equal(pixels, test.images[5, 0].numpy())
    assert "start must be below 10000" in error(client.get("/v1/models/cvae/test-images?start=10000"), 422, "start")
    assert "at most 32" in error(client.get("/v1/models/cvae/test-images?n=33"), 422, "n")


def test_a_library_error_is_422_with_its_message(registry, monkeypatch):
    def missing(*args):
        raise DataError("mnist test: files not found")
    monkeypatch.setattr(registry, "test_images", missing)
    with serve(registry) as c:
        assert error(c.get("/v1/models/cvae/test-images"), 422) == "mnist test: files not found"


# --- detection ---------------------------------------------------------------------------------------
def test_detect_judges_uploads_as_the_detector_does(client, registry):
    digit = load_dataset("mnist", "test").images[0, 0].numpy()
    files = [("images", ("digit.png", png(digit), "image/png")),
             ("images", ("digit.jpg", png(np.stack([digit] * 3, -1), "JPEG"), "image/jpeg"))]  # grey stored as RGB
    body = client.post("/v1/detect", files=files).json()
    assert body["threshold"] == 0.5 and [r["name"] for r in body["results"]] == ["digit.png", "digit.jpg"]
    p, _ = registry.detector.predict(torch.from_numpy(digit)[None, None].float() / 255)
    first = body["results"][0]
    assert first["probability"] == pytest.approx(float(p[0]), abs=1e-6)
    assert first["verdict"] == ("generated/edited" if first["probability"] >= 0.5 else "real")
    assert isinstance(first["soft"], bool)
    import base64
    heatmap = Image.open(io.BytesIO(base64.b64decode(first["heatmap"])))
    assert heatmap.format == "PNG" and heatmap.size[0] >= 112 and heatmap.mode == "RGB"


def test_detect_refuses_a_colour_picture_for_a_grey_detector(client):
    colour = np.zeros((28, 28, 3), np.uint8)
    colour[..., 0] = 255
    message = error(client.post("/v1/detect", files=[("images", ("red.png", png(colour), "image/png"))]), 422, "images")
    assert "colour (3 channels)" in message


def test_detect_without_a_detector_is_409(serve_runs):
    with serve(Registry.load([serve_runs["cvae"]])) as c:
        digit = png(np.zeros((28, 28), np.uint8))
        assert "--detector" in error(c.post("/v1/detect", files=[("images", ("a.png", digit, "image/png"))]), 409)
        assert c.get("/v1/models").json()["detector"] is None


@pytest.mark.parametrize("name, data", [
    ("notes.txt", b"just some text, not a picture"),
    ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
])
def test_an_upload_that_is_not_png_or_jpeg_is_415(client, name, data):
    message = error(client.post("/v1/detect", files=[("images", (name, data, "image/png"))]), 415, "images")
    assert message == f"images ({name}): not a PNG or JPEG image"


def test_a_truncated_image_is_422(client):
    data = png(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8))
    message = error(client.post("/v1/detect", files=[("images", ("cut.png", data[:len(data) // 2], "image/png"))]),
                    422, "images")
    assert "truncated" in message


def test_an_image_over_the_pixel_limit_is_413_before_decoding(registry):
    with serve(registry, max_pixels=10_000) as c:
        message = error(c.post("/v1/detect", files=[("images", ("big.png", png_header(200, 100), "image/png"))]),
                        413, "images")
        assert "200x100 = 20000 pixels" in message  # from the header: the file holds no pixels to decode
        bomb = png_header(100_000, 100_000)  # 10^10 pixels in 45 bytes: past Pillow's own bomb guard too
        assert "far larger" in error(c.post("/v1/detect", files=[("images", ("bomb.png", bomb, "image/png"))]),
                                     413, "images")


def test_a_body_over_the_limit_is_413_declared_or_streamed(registry):
    big = png(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))  # ~40 KB
    with serve(registry, max_body_mb=0.01) as c:
        assert "0.01 MB" in error(c.post("/v1/detect", files=[("images", ("big.png", big, "image/png"))]), 413)

        def chunks():  # no Content-Length: the server counts what arrives
            for i in range(0, len(big), 4096):
                yield big[i:i + 4096]
        response = c.post("/v1/models/cvae/sample", content=chunks(), headers={"content-type": "application/json"})
        assert "0.01 MB" in error(response, 413)


# --- who may call ------------------------------------------------------------------------------------
def test_the_api_key_guards_v1_and_metrics_only(registry):
    with serve(registry, api_key=KEY) as c:
        assert "needs an API key" in error(c.get("/v1/models"), 401)
        assert error(c.get("/v1/models", headers={"x-api-key": "w" * 24}), 401) == "wrong API key"
        assert error(c.get("/metrics", headers={"authorization": "Bearer nope"}), 401) == "wrong API key"
        assert c.get("/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.post("/v1/models/cvae/sample", json={"n": 1}, headers={"x-api-key": KEY}).status_code == 200
        for open_path in ("/healthz", "/readyz", "/", "/openapi.json"):
            assert c.get(open_path).status_code == 200, open_path
        schema = c.get("/openapi.json").json()
        assert schema["paths"]["/v1/models"]["get"]["security"] and "security" not in schema["paths"]["/healthz"]["get"]
        text = c.get("/metrics", headers={"x-api-key": KEY}).text
    # refused before routing, still counted under the route's template
    assert 'genforge_requests_total{method="GET",route="/v1/models",status="401"} 2.0' in text


def test_a_post_from_another_sites_page_is_403(client, registry):
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}, {"origin": "null"}):
        assert "refused a POST" in error(client.post("/v1/models/cvae/sample", json={"n": 1}, headers=headers), 403)
    same = client.post("/v1/models/cvae/sample", json={"n": 1}, headers={"origin": "http://127.0.0.1",
                                                                         "sec-fetch-site": "same-origin"})
    assert same.status_code == 200
    read = client.get("/v1/models", headers={"origin": "http://evil.example"})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers  # reads pass, CORS off
    with serve(registry, cors_origins=["http://ok.example"]) as c:
        allowed = c.post("/v1/models/cvae/sample", json={"n": 1}, headers={"origin": "http://ok.example"})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://ok.example"
        assert error(c.post("/v1/models/cvae/sample", json={"n": 1}, headers={"origin": "http://evil.example"}), 403)


def test_a_keyless_server_answers_only_requests_addressed_to_a_local_name(client, registry):
    """DNS rebinding: a page at http://evil.example:8000 whose name is made to resolve to 127.0.0.1
    is same-origin with itself, so only the Host header it must send gives it away."""
    for host in ("evil.example:8000", "evil.example", "127.0.0.1.evil.example"):
        for request in (lambda: client.get("/v1/models", headers={"host": host}),
                        lambda: client.post("/v1/models/cvae/sample", json={"n": 1},
                                            headers={"host": host, "origin": f"http://{host}"})):
            answer = request()
            assert answer.status_code == 403 and answer.json()["error"]["field"] == "host", host
            assert "--allowed-host" in answer.json()["error"]["message"]
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000"):
        assert client.get("/v1/models", headers={"host": host}).status_code == 200, host
    with serve(registry, allowed_hosts=["genforge.local"]) as c:
        assert c.get("/v1/models", headers={"host": "genforge.local:8000"}).status_code == 200
        assert c.get("/v1/models", headers={"host": "evil.example"}).status_code == 403
    with serve(registry, api_key=KEY) as c:  # with a key, whoever holds it calls by any name
        assert c.get("/v1/models", headers={"host": "gpu-box.example", "x-api-key": KEY}).status_code == 200
    with pytest.raises(ConfigError, match=r"allowed_hosts must be .*\(not a host name: 'evil.example/x'\)"):
        ServeConfig(allowed_hosts=["evil.example/x"])


# --- load and failures -------------------------------------------------------------------------------
def test_a_full_queue_is_429_with_retry_after(registry):
    with serve(registry, queue_size=1, max_batch=1, max_wait_ms=0) as c:
        batcher = c.app.state.batchers["cvae/sample"]
        entered, release, original = threading.Event(), threading.Event(), batcher.run_batch

        def slow(items):
            entered.set()
            release.wait(20)
            return original(items)
        batcher.run_batch = slow
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(c.post, "/v1/models/cvae/sample", json={"n": 1})
            assert entered.wait(20)  # the first request's batch is running
            waiting = pool.submit(c.post, "/v1/models/cvae/sample", json={"n": 1})
            deadline = time.monotonic() + 20
            while batcher.depth() < 1 and time.monotonic() < deadline:  # the second waits in the queue
                time.sleep(0.01)
            refused = c.post("/v1/models/cvae/sample", json={"n": 1})
            release.set()
            assert running.result().status_code == 200 and waiting.result().status_code == 200
        assert "too many requests waiting for cvae/sample" in error(refused, 429)
        assert refused.headers["retry-after"] == "1"
        assert 'genforge_rejected_total{batcher="cvae/sample"} 1.0' in c.get("/metrics").text


def test_an_unexpected_error_is_500_without_its_details(registry, caplog):
    with serve(registry) as c:
        def broken(items):
            raise RuntimeError("secret internals /home/someone")
        c.app.state.batchers["cgan/sample"].run_batch = broken
        response = c.post("/v1/models/cgan/sample", json={"n": 1})
    assert error(response, 500) == INTERNAL
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "secret internals" in caplog.text  # logged for the operator


def test_metrics_health_and_readiness(client, serve_runs):
    client.get("/v1/models/nope")
    assert client.post("/v1/models/cgan/sample", json={"n": 2}).status_code == 200
    text = client.get("/metrics").text
    for name in ("genforge_requests_total", "genforge_request_seconds_bucket", "genforge_queue_depth",
                 "genforge_batch_images_bucket", "genforge_errors_total"):
        assert name in text, name
    assert 'genforge_errors_total{route="/v1/models/{name}",status="404"}' in text  # by template, not by path
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "models": ["cvae", "cgan"]}
    with serve(Registry()) as empty:
        response = empty.get("/readyz")
        assert response.status_code == 503 and response.json() == {"ready": False, "models": []}


def test_the_app_starts_again_after_a_lifespan_stopped_it(registry):
    # test clients (schemathesis's too) run a lifespan per `with` block: each must find live workers
    app = create_app(ServeConfig(), registry)
    for _ in range(2):
        with TestClient(app, base_url=LOCAL) as c:
            assert c.get("/readyz").status_code == 200
            assert c.post("/v1/models/cgan/sample", json={"n": 1}).status_code == 200
        assert app.state.shutting_down and app.state.executor._shutdown


def test_the_schema_states_the_limits_and_the_error_bodies(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["SampleRequest"]["properties"]["n"]["maximum"] == 32
    mine = {"/v1/models", "/v1/models/{name}", "/v1/models/{name}/sample", "/v1/models/{name}/test-images",
            "/v1/detect", "/healthz", "/readyz", "/metrics"}
    assert mine <= set(schema["paths"])
    for path in mine:
        for method, operation in schema["paths"][path].items():
            assert "500" in operation["responses"], (method, path)
            if path.startswith("/v1"):
                body = operation["responses"]["422"]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    assert client.get("/").headers["content-type"].startswith("text/html")


# --- the batcher on its own --------------------------------------------------------------------------
def test_the_batcher_gathers_splits_and_isolates_failures():
    calls = []

    def run(items):
        calls.append(list(items))
        return [ValueError(f"bad {i}") if i == "bad" else i * 10 for i in items]

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            gather = MicroBatcher(run, max_batch=8, max_wait_ms=200, queue_size=16, executor=pool)
            together = await asyncio.gather(*(gather.submit(i) for i in range(5)))
            split = MicroBatcher(run, max_batch=4, max_wait_ms=200, queue_size=16, executor=pool)
            sizes = await asyncio.gather(*(split.submit(i, size) for i, size in enumerate([3, 2, 9, 1])))
            mixed = await asyncio.gather(gather.submit(1), gather.submit("bad"), return_exceptions=True)
            # the first request waits in the queue for a second to join it (max_batch 2): the queue is full
            full = MicroBatcher(run, max_batch=2, max_wait_ms=200, queue_size=1, executor=pool)
            first = asyncio.ensure_future(full.submit(1))
            await asyncio.sleep(0)
            with pytest.raises(ApiError) as refused:
                await full.submit(2)
            await first
            for b in (gather, split, full):
                await b.aclose()
            return together, sizes, mixed, refused.value
    together, sizes, mixed, refused = asyncio.run(scenario())
    assert together == [0, 10, 20, 30, 40] and calls[0] == [0, 1, 2, 3, 4]  # one call for all five
    # at most 4 images a batch, the oldest first; a request larger than that runs alone
    assert sizes == [0, 10, 20, 30] and calls[1:5] == [[0], [1], [2], [3]]
    assert mixed[0] == 10 and isinstance(mixed[1], ValueError)  # one bad request fails alone
    assert refused.status == 429 and refused.headers == {"Retry-After": "1"}


# --- the command line --------------------------------------------------------------------------------
def test_serve_refusals_are_one_line_and_exit_2(serve_runs, capsys, monkeypatch):
    monkeypatch.delenv("GENFORGE_API_KEY", raising=False)
    cases = [(["--host", "0.0.0.0"], "host must be 127.0.0.1 unless an API key is set"),
             (["--max-batch", "0"], "max_batch must be a whole number >= 1"),
             (["--api-key", "short"], "api_key must be at least 16 characters"),
             (["--cors-origin", "evil"], "not an origin: 'evil'")]
    for flags, says in cases:
        assert main(["serve", str(serve_runs["cvae"]), *flags]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert main(["serve", str(serve_runs["cvae"].parent / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)  # as if genforge[serve] were not installed
    assert main(["serve", str(serve_runs["cvae"])]) == 2
    assert "pip install 'genforge[serve]'" in capsys.readouterr().err


def test_a_stopping_server_answers_the_request_in_flight_then_shuts_down(registry):
    import httpx

    from genforge.cli.serve import listening_socket, make_server
    app = create_app(ServeConfig(max_wait_ms=0), registry)
    batcher = app.state.batchers["cvae/sample"]
    entered, original = threading.Event(), batcher.run_batch

    def slow(items):
        entered.set()
        time.sleep(0.5)
        return original(items)
    batcher.run_batch = slow
    sock = listening_socket("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{url}/v1/models/cvae/sample", json={"n": 2, "format": "grid"},
                                timeout=20)
        assert entered.wait(20)
        server.should_exit = True  # what Ctrl-C and SIGTERM do
        response = in_flight.result()
    thread.join(20)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert not thread.is_alive() and app.state.shutting_down


def test_the_listening_socket_says_it_is_tcp_so_answers_are_not_held_back():
    """asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections whose socket names
    IPPROTO_TCP. With proto 0, an answer's body (written after its headers) waited on a kept-alive
    connection for the client's delayed ACK: 40 ms on every request after the first
    (bench/serve_load.py measured it before the fix)."""
    import asyncio
    import socket

    from genforge.cli.serve import listening_socket
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        sock.listen()
        client = socket.create_connection(sock.getsockname())
        accepted, _ = sock.accept()
        with client, accepted:
            # what asyncio does to every accepted connection (base_events._set_nodelay)
            asyncio.base_events._set_nodelay(accepted)
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
