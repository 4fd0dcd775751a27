"""`genforge serve`'s edits, jobs and sliders through FastAPI's TestClient: every `genforge edit`
operation on the session's tiny cvae (what each answers, checked on the images themselves), a
latent-search edit of the cgan as a job (progress, result, cancel, events, expiry, a full store),
and the directions and traverse routes the page's sliders use.

The models are `serve_runs`' (a cvae and a cgan trained a few steps): what is checked is the
server's behaviour, not the edits' quality. Latent searches are kept short."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from genforge.edit.operations import OPS  # noqa: E402
from genforge.serve.app import create_app  # noqa: E402
from genforge.serve.config import ServeConfig  # noqa: E402

LOCAL = "http://127.0.0.1"  # a keyless server answers only requests addressed to a local name
from genforge.serve.errors import ApiError  # noqa: E402
from genforge.serve.editing import run_edit  # noqa: E402
from genforge.serve.jobs import JobCancelled, JobStore  # noqa: E402
from genforge.serve.registry import Registry  # noqa: E402

QUICK = {"search_steps": "5", "restarts": "1"}


@pytest.fixture(scope="module")
def registry(serve_runs):
    return Registry.load([serve_runs["cvae"], serve_runs["cgan"]])


@pytest.fixture(scope="module")
def client(registry):
    with TestClient(create_app(ServeConfig(), registry), base_url=LOCAL) as c:
        yield c


def pixels(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return np.asarray(im)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def edit(client, op: str, model: str = "cvae", files=None, **fields):
    return client.post(f"/v1/models/{model}/edit/{op}", data={k: str(v) for k, v in fields.items()}, files=files)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def refused(response, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["field"] == field, error
    return error["message"]


# --- every op, answered at once -------------------------------------------------------------------
def test_reconstruct_answers_one_image_per_input_at_the_models_shape(client):
    body = ok(edit(client, "reconstruct", test_indices="0,1,2"))
    assert body["op"] == "reconstruct" and len(body["images"]) == len(body["inputs"]) == 3
    assert all(pixels(image).shape == (28, 28) for image in body["images"])
    assert body["frames"] is None and body["gif"] is None
    assert len(body["reads_before"]) == len(body["reads_after"]) == 3
    assert body["summary"].startswith("reconstructed 3 image(s): MSE")
    # uploads of any size come in at the model's size, in the order sent
    big = np.zeros((56, 40), np.uint8)
    big[10:40, 15:25] = 255
    files = [("images", ("a.png", png(big), "image/png")), ("images", ("b.png", png(255 - big), "image/png"))]
    body = ok(edit(client, "reconstruct", files=files))
    assert [pixels(image).shape for image in body["images"]] == [(28, 28)] * 2
    inputs = [pixels(image) for image in body["inputs"]]
    assert inputs[0].mean() < inputs[1].mean()  # the second upload is the bright one


def test_swap_class_records_what_the_classifier_reads(client, registry):
    body = ok(edit(client, "swap-class", test_indices="0,1,2,3", to="3"))
    names = registry.class_names("cvae")
    assert len(body["images"]) == 4 and all(r in names for r in body["reads_before"] + body["reads_after"])
    share = sum(r == names[3] for r in body["reads_after"]) / 4
    assert f"classifier reads class 3 in {share:.0%} of edited images" in body["summary"]


def test_inpaint_changes_only_the_masked_pixels(client):
    body = ok(edit(client, "inpaint", test_indices="0,1", box="7,7,21,21", blend="0", **QUICK))
    box = np.zeros((28, 28), bool)
    box[7:21, 7:21] = True
    for before, after in zip(body["inputs"], body["images"]):
        x, y = pixels(before).astype(int), pixels(after).astype(int)
        assert (x[~box] == y[~box]).all() and (x[box] != y[box]).any()
    # the same from an uploaded mask (white = missing), drawn at another size
    mask = np.zeros((56, 56), np.uint8)
    mask[28:, :] = 255
    body = ok(edit(client, "inpaint", files=[("mask", ("m.png", png(mask), "image/png"))], test_indices="4",
                   **QUICK))
    x, y = pixels(body["inputs"][0]).astype(int), pixels(body["images"][0]).astype(int)
    assert (x[:14] == y[:14]).all() and (x[14:] != y[14:]).any()


def test_interpolate_gives_steps_frames_per_pair_and_a_gif(client):
    body = ok(edit(client, "interpolate", test_indices="0,1,2,3", steps="5"))
    assert len(body["frames"]) == 2 and all(len(path) == 5 for path in body["frames"])
    assert all(pixels(frame).shape == (28, 28) for frame in body["frames"][0])
    assert len(body["images"]) == 2  # one strip per path
    with Image.open(io.BytesIO(base64.b64decode(body["gif"]))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 2 * 5 - 2  # forward, then back without repeating the ends
    assert body["reads_after"] is None and body["summary"].startswith("made 2 interpolation(s) of 5 steps (slerp)")


def test_attribute_and_directions_run(client):
    body = ok(edit(client, "attribute", test_indices="0,1", to="thickness", strength="2"))
    assert len(body["images"]) == 2 and body["summary"].startswith("moved along thickness by 2")
    # a conditional model's codes hold no class: the library's refusal is a 422 in the one body
    assert "use swap-class" in refused(edit(client, "attribute", test_indices="0", to="8"), 422, None)
    body = ok(edit(client, "directions", test_indices="0,1,2,3", method="pca", num_directions="2", steps="3"))
    assert [len(path) for path in body["frames"]] == [3, 3] and body["gif"]
    assert "pca direction(s)" in body["summary"]


@pytest.mark.parametrize("op, fields, files, field", [
    ("reconstruct", {}, None, "images"),  # neither images nor test_indices
    ("inpaint", {"test_indices": "0", "box": "1,2,3"}, None, "box"),
    ("inpaint", {"test_indices": "0"}, None, "box"),  # neither mask nor box
    ("interpolate", {"test_indices": "0"}, None, "images"),
    ("attribute", {"test_indices": "0"}, None, "to"),
    ("attribute", {"test_indices": "0", "to": "hue=lots"}, None, "to"),
    ("reconstruct", {"test_indices": "0,x"}, None, "test_indices"),
    ("reconstruct", {"test_indices": "99999"}, None, "test_indices"),
    ("reconstruct", {"test_indices": "0", "search_steps": "5000"}, None, "search_steps"),
    ("reconstruct", {"test_indices": "0", "restarts": "0"}, None, "restarts"),
    ("interpolate", {"test_indices": "0,1", "method": "cubic"}, None, "method"),
    ("reconstruct", {}, [("images", ("x.gif", b"GIF89a....", "image/gif"))], "images"),
])
def test_bad_fields_are_422_naming_the_field(client, op, fields, files, field):
    status = 415 if files else 422
    refused(edit(client, op, files=files, **fields), status, field)


def test_unknown_op_and_model_are_404(client):
    message = refused(edit(client, "sharpen", test_indices="0"), 404, "op")
    assert all(op in message for op in OPS)
    assert "loaded: cvae, cgan" in refused(edit(client, "reconstruct", model="nope", test_indices="0"), 404, "name")


# --- jobs -----------------------------------------------------------------------------------------
def submit(client, op: str, model: str = "cgan", **fields) -> dict:
    response = client.post(f"/v1/jobs/edit/{model}/{op}", data={k: str(v) for k, v in fields.items()})
    assert response.status_code == 202, response.text
    return response.json()


def wait(client, job_id: str, until=lambda job: job["state"] in ("done", "failed", "cancelled"),
         timeout: float = 60) -> tuple[dict, list[dict]]:
    seen, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/v1/jobs/{job_id}").json()
        seen.append(job)
        if until(job):
            return job, seen
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {seen[-1]} after {timeout} s")


def test_a_latent_search_job_reports_progress_and_its_result(client):
    fields = {"test_indices": "0,1", "search_steps": "30", "restarts": "1", "seed": "1"}
    job = submit(client, "reconstruct", **fields)
    assert job["state"] in ("queued", "running") and job["result"] is None and job["expires_at"] is None
    done, seen = wait(client, job["id"])
    assert done["state"] == "done" and done["progress"] == 1.0 and done["error"] is None
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert done["finished"] >= done["started"] >= done["created"]
    assert done["expires_at"] == pytest.approx(done["finished"] + ServeConfig().job_ttl_s)
    # the same edit answered at once gives the same images (the search is seeded)
    direct = ok(edit(client, "reconstruct", model="cgan", **fields))
    # the same answer as the synchronous edit; the PNGs' signed manifests hold their own creation times
    assert {k: v for k, v in done["result"].items() if k != "images"} == {k: v for k, v in direct.items() if k != "images"}
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(done["result"]["images"], direct["images"], strict=True))


def test_run_edit_reports_each_search_step_and_stops_when_cancelled(registry):
    data = registry.test_set("cgan")
    heard = []
    params = {"search_steps": 10, "restarts": 1}
    run_edit(registry.editor("cgan"), "interpolate", data.images[:2], data.labels[:2], {**params, "steps": 3},
             progress=lambda fraction, message: heard.append((fraction, message)))
    fractions = [f for f, _ in heard]
    assert fractions == sorted(fractions) and fractions[-1] == 0.99  # then the job store says 1.0
    searching = [m for f, m in heard if 0 < f < 0.99]
    assert len(searching) == 20 and searching[0] == "latent search 1/2: step 1/10"  # two inversions, 10 steps each
    assert searching[-1] == "latent search 2/2: step 10/10"
    asked = []
    with pytest.raises(JobCancelled):  # cancelled after the third step: the search stops there
        run_edit(registry.editor("cgan"), "reconstruct", data.images[:2], data.labels[:2], params,
                 cancelled=lambda: asked.append(1) or len(asked) > 3)
    assert len(asked) == 4


def test_a_cancelled_job_stops_its_work(client):
    job = submit(client, "reconstruct", test_indices="0,1,2,3,4,5,6,7", search_steps="1000", restarts="8")
    wait(client, job["id"], until=lambda j: j["progress"] > 0)
    asked = time.monotonic()
    response = client.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["message"] == "cancelling"
    cancelled, _ = wait(client, job["id"], timeout=10)
    assert cancelled["state"] == "cancelled" and cancelled["result"] is None and cancelled["progress"] < 0.5
    assert time.monotonic() - asked < 5  # stopped at its next step, far before the search would end
    time.sleep(0.2)
    assert client.get(f"/v1/jobs/{job['id']}").json()["progress"] == cancelled["progress"]  # nothing runs on
    # cancelling a finished job forgets it
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 200
    refused(client.get(f"/v1/jobs/{job['id']}"), 404, "job_id")


def test_events_stream_progress_then_the_end(client):
    job = submit(client, "reconstruct", test_indices="0", search_steps="20", restarts="1")
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())  # the stream ends with the job
    events = []
    for part in filter(None, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in part.splitlines() if not line.startswith(":"))
        events.append((lines["event"], json.loads(lines["data"])))
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"} and len(names) >= 2
    assert events[-1][1]["result"]["op"] == "reconstruct" and len(events[-1][1]["result"]["images"]) == 1
    refused(client.get("/v1/jobs/nothing-here/events"), 404, "job_id")


def test_finished_jobs_expire(registry):
    now = [1000.0]
    app = create_app(ServeConfig(), registry)
    with TestClient(app, base_url=LOCAL) as c:
        app.state.jobs = JobStore(ttl_s=60, max_jobs=4, executor=app.state.executor, clock=lambda: now[0])
        job = submit(c, "reconstruct", model="cvae", test_indices="0")
        done, _ = wait(c, job["id"])
        assert done["state"] == "done" and done["expires_at"] == 1060.0
        now[0] = 1059.0
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 200
        now[0] = 1060.5
        assert "forgotten" in refused(c.get(f"/v1/jobs/{job['id']}"), 404, "job_id")
        assert len(app.state.jobs) == 0


def test_a_full_store_refuses_with_retry_after(registry):
    app = create_app(ServeConfig(), registry)
    release = threading.Event()
    with TestClient(app, base_url=LOCAL) as c:
        store = app.state.jobs = JobStore(ttl_s=60, max_jobs=2, executor=app.state.executor)
        held = [store.submit(lambda ctx: release.wait(10) and None) for _ in range(2)]
        response = c.post("/v1/jobs/edit/cvae/reconstruct", data={"test_indices": "0"})
        assert "--max-jobs" in refused(response, 429, None) and int(response.headers["Retry-After"]) > 0
        release.set()
        for job in held:
            wait(c, job.id)
        # finished jobs make room: the oldest is evicted for a new one
        new = submit(c, "reconstruct", model="cvae", test_indices="0")
        assert c.get(f"/v1/jobs/{held[0].id}").status_code == 404
        assert c.get(f"/v1/jobs/{held[1].id}").status_code == 200 and wait(c, new["id"])[0]["state"] == "done"


def test_the_store_runs_jobs_in_turn_and_keeps_errors_short():
    with ThreadPoolExecutor(2) as executor:
        store = JobStore(ttl_s=60, max_jobs=8, executor=executor, concurrency=1)
        gate = threading.Event()
        first = store.submit(lambda ctx: gate.wait(10) and "first")
        second = store.submit(lambda ctx: "second")
        time.sleep(0.05)
        assert store.view(first.id)["state"] == "running" and store.view(second.id)["state"] == "queued"
        gate.set()
        assert second.done_event.wait(5) and store.view(second.id)["result"] == "second"

        def broken(ctx):
            raise KeyError("secret internals")
        failed = store.submit(broken)
        assert failed.done_event.wait(5)
        assert store.view(failed.id)["error"] == "internal error (logged on the server)"

        def cooperative(ctx):
            while True:
                ctx.check()
                time.sleep(0.01)
        running = store.submit(cooperative)
        queued = store.submit(lambda ctx: "never")
        store.shutdown()
        assert running.done_event.wait(5) and store.view(running.id)["state"] == "cancelled"
        assert store.view(queued.id)["state"] == "cancelled"
        with pytest.raises(ApiError) as refusal:
            store.submit(lambda ctx: None)
        assert refusal.value.status == 503


# --- sliders --------------------------------------------------------------------------------------
def test_directions_are_cached_and_traverse_starts_from_the_sample(client):
    gan = ok(client.get("/v1/models/cgan/directions", params={"k": 3}))
    assert gan["method"] == "sefa" and gan["directions"] == 3 and gan["scales"] == [1.0, 1.0, 1.0]
    assert gan["values"] == sorted(gan["values"], reverse=True)
    assert client.app.state.edit_directions["cgan"]["asked"] == 3
    ok(client.get("/v1/models/cgan/directions", params={"k": 2}))  # fewer: the cached ones, not recomputed
    assert client.app.state.edit_directions["cgan"]["asked"] == 3
    ae = ok(client.get("/v1/models/cvae/directions", params={"k": 2}))
    assert ae["method"] == "pca" and len(ae["scales"]) == 2 and ae["scales"][0] >= ae["scales"][1] > 0

    sample = ok(client.post("/v1/models/cgan/sample", json={"n": 1, "seed": 5, "label": 3, "format": "json"}))
    still = client.post("/v1/models/cgan/traverse", json={"seed": 5, "label": 3, "offsets": [0, 0, 0]})
    assert still.status_code == 200 and still.headers["content-type"] == "image/png"
    start = pixels(sample["images"][0])
    assert (np.asarray(Image.open(io.BytesIO(still.content))) == start).all()
    moved = client.post("/v1/models/cgan/traverse", json={"seed": 5, "label": 3, "offsets": [3, 0, 0]})
    assert np.abs(np.asarray(Image.open(io.BytesIO(moved.content))).astype(int) - start).sum() > 0
    refused(client.post("/v1/models/cgan/traverse", json={"seed": 5, "offsets": [float("1e9")]}), 422, "offsets")
    refused(client.post("/v1/models/cgan/traverse", json={"offsets": [0] * 40}), 422, "offsets")
