"""The API fuzzed from its own OpenAPI schema (schemathesis, in-process over ASGI): for requests
generated from every operation's schema, valid and not, the server never answers 5xx, and every
answer (status code, content type, body) is one the schema declares.

Examples are derandomised (the same requests every run) and few per operation, so the file runs in
CI's budget; `GENFORGE_FUZZ_EXAMPLES=200` fuzzes harder by hand."""

import os
import zlib

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, response_schema_conformance, status_code_conformance)

from genforge.serve.app import create_app  # noqa: E402
from genforge.serve.config import ServeConfig  # noqa: E402
from genforge.serve.registry import Registry  # noqa: E402

EXAMPLES = int(os.environ.get("GENFORGE_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def api_schema(serve_runs):
    # The conditional autoencoder alone: every operation has a model that can do it, and its edits
    # need no GAN latent search (which would spend seconds per generated request).
    registry = Registry.load([serve_runs["cvae"]], serve_runs["detector"])
    # schemathesis' in-process client addresses the app as "testserver": a name to allow, as an
    # operator would allow the name of their machine (--allowed-host)
    app = create_app(ServeConfig(max_images=8, max_body_mb=1, allowed_hosts=["testserver"]), registry)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def reaching_the_work(case):
    """Most generated edit and detect requests carry no image the schema can promise (images and
    test_indices are each optional, one is needed; random bytes are no PNG) and would all end in one
    422 or 415 before any work. Give half of them test images or a real PNG, the rest as generated,
    so the fuzzing also reaches the edits and the detector with generated parameters."""
    body = case.body if isinstance(case.body, dict) else None
    if body is None or zlib.crc32(repr(sorted(body, key=str)).encode()) % 2:  # not hash(): salted per run
        return case
    if "/edit/" in case.path and not body.get("images") and not body.get("test_indices"):
        body["test_indices"] = "0,1"
        if case.path_parameters.get("op") == "inpaint" and not body.get("mask") and not body.get("box"):
            body["box"] = "7,7,21,21"
    elif case.path.endswith("/detect"):
        body["images"] = [DIGIT]
    return case


def digit_png() -> bytes:
    import io

    import numpy as np
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


DIGIT = digit_png()


def test_no_server_error_and_every_answer_matches_the_schema(api_schema):
    # A loop over the operations rather than schemathesis' pytest parametrisation: that one does not
    # run under pytest 9 (it reaches a node attribute pytest no longer has).
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]  # the whole API, not a part of it
    for operation in operations:
        @given(case=operation.as_strategy().map(reaching_the_work))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(checks=checks)

        try:
            fuzz()
        except Exception as e:
            raise AssertionError(f"{operation.label}: {e}") from e
