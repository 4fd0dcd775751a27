"""Signed provenance metadata (issue 32): the key, the manifest in a PNG chunk, and the three
verdicts of `genforge verify` (signed, broken, none), through the library, the CLI (sample, edit,
keys, verify, detect) and the server. Every test gets its own config folder (GENFORGE_CONFIG in
tmp_path): the user's ~/.config is never touched."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from genforge.cli import main
from genforge.errors import ProvenanceError
from genforge.provenance import KEYWORD, digests, read_chunk, signing_key, verify_bytes, verify_file
from genforge.provenance.keys import config_dir, key_path


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GENFORGE_CONFIG", str(tmp_path / "config"))
    return tmp_path / "config"


def chunk_text(path) -> str:
    with Image.open(path) as image:
        return read_chunk(image)


def resave(path, out, pixels: np.ndarray | None = None, text: str | None = None) -> None:
    """The picture at `path` written again: with other pixels and/or another chunk text (None: no chunk)."""
    with Image.open(path) as image:
        array = np.asarray(image) if pixels is None else pixels
    info = None
    if text is not None:
        info = PngInfo()
        info.add_itxt(KEYWORD, text)
    Image.fromarray(array).save(out, pnginfo=info)


def sample(run, out, *extra) -> None:
    assert main(["sample", str(run), "--n", "4", "--seed", "3", "--out", str(out), *extra]) == 0


@pytest.fixture
def signed_grid(tiny_run, tmp_path):
    sample(tiny_run, tmp_path / "grid.png", "--grid")
    return tmp_path / "grid.png"


# --- signed --------------------------------------------------------------------------------------
def test_a_sampled_png_verifies_as_signed_by_this_key_with_model_and_op(tiny_run, signed_grid, tmp_path):
    result = verify_file(signed_grid)
    key = signing_key(create=False)
    assert result["status"] == "signed" and result["reason"] is None
    assert result["key"] == key.fingerprint and result["own"] is True
    assert len(key.fingerprint) == 16 and key.fingerprint == hashlib.sha256(key.public_raw).hexdigest()[:16]
    weights = hashlib.sha256((tiny_run / "model.safetensors").read_bytes()).hexdigest()
    assert result["model"] == {"family": "vae", "dataset": "mnist", "image_shape": [1, 28, 28],
                               "weights_sha256": weights}
    assert result["operation"] == "sample"
    assert result["parameters"] == {"n": 4, "seed": 3, "label": None, "prior": "none", "temperature": 1.0,
                                    "grid": True, "watermark": False}
    assert result["created"].endswith("Z") and result["created"][:2] == "20"
    manifest = json.loads(chunk_text(signed_grid))["manifest"]
    assert manifest["tool"] == "genforge" and manifest["version"] and manifest["public_key"]

    sample(tiny_run, tmp_path / "each")  # a folder: one signed PNG per image, each with its index
    files = sorted((tmp_path / "each").glob("*.png"))
    assert len(files) == 4
    for i, path in enumerate(files):
        assert verify_file(path)["status"] == "signed"
        assert json.loads(chunk_text(path))["manifest"]["index"] == i


def test_a_key_made_elsewhere_is_signed_but_not_own(signed_grid, private_config, monkeypatch):
    monkeypatch.setenv("GENFORGE_CONFIG", str(private_config.parent / "other-machine"))
    result = verify_file(signed_grid)
    assert result["status"] == "signed" and result["own"] is False
    assert signing_key(create=False) is None  # verifying never makes a key


# --- broken --------------------------------------------------------------------------------------
def test_one_changed_pixel_breaks_the_signature(signed_grid, tmp_path):
    with Image.open(signed_grid) as image:
        array = np.asarray(image).copy()
    array[5, 5] ^= 1
    resave(signed_grid, tmp_path / "pixel.png", pixels=array, text=chunk_text(signed_grid))
    result = verify_file(tmp_path / "pixel.png")
    assert result["status"] == "broken" and result["reason"] == "the pixels changed after signing"
    assert result["key"] is None and result["model"] is None


def test_an_edited_manifest_breaks_the_signature(signed_grid, tmp_path):
    text = chunk_text(signed_grid)
    assert '"seed":3' in text
    resave(signed_grid, tmp_path / "text.png", text=text.replace('"seed":3', '"seed":4'))
    result = verify_file(tmp_path / "text.png")
    assert result["status"] == "broken" and result["reason"] == "the manifest changed after signing"


@pytest.mark.parametrize("text, says", [
    ("not json {", "not JSON"),
    ("[1, 2]", "no manifest object"),
    ('{"alg": "Ed25519", "manifest": {}, "signature": "AAAA"}', "signature"),
    ("[" * 100000 + "]" * 100000, "not JSON"),  # nesting deep enough to exhaust a recursive parser
    ("x" * (2 << 20), "characters long"),
])
def test_a_malformed_chunk_is_broken_not_a_crash(signed_grid, tmp_path, text, says):
    resave(signed_grid, tmp_path / "bad.png", text=text)
    result = verify_file(tmp_path / "bad.png")
    assert result["status"] == "broken" and says in result["reason"]


def test_a_manifest_naming_another_key_or_holding_nan_is_broken(signed_grid, tmp_path):
    chunk = json.loads(chunk_text(signed_grid))
    chunk["manifest"]["key"] = "0" * 16
    resave(signed_grid, tmp_path / "key.png", text=json.dumps(chunk))
    assert "another key" in verify_file(tmp_path / "key.png")["reason"]
    chunk = json.loads(chunk_text(signed_grid))
    chunk["manifest"]["parameters"]["temperature"] = float("nan")
    resave(signed_grid, tmp_path / "nan.png", text=json.dumps(chunk))  # json.dumps writes NaN
    assert verify_file(tmp_path / "nan.png")["status"] == "broken"


# --- none ----------------------------------------------------------------------------------------
def test_no_chunk_a_jpeg_and_a_resaved_image_read_as_none(signed_grid, tmp_path):
    resave(signed_grid, tmp_path / "plain.png")
    with Image.open(signed_grid) as image:
        image.save(tmp_path / "resaved.png")  # Pillow's re-save drops the chunk, as any re-encode does
        image.convert("RGB").save(tmp_path / "photo.jpg")
    for name in ("plain.png", "resaved.png", "photo.jpg"):
        result = verify_file(tmp_path / name)
        assert result["status"] == "none" and result["key"] is None and result["own"] is False
        assert "unknown" in result["reason"] and "not evidence that the image is authentic" in result["reason"]


# --- keys ----------------------------------------------------------------------------------------
def test_the_key_is_made_once_private_in_the_config_folder(private_config, tiny_run):
    key = signing_key()
    assert key.path == private_config / "signing-key.pem" == key_path() and config_dir() == private_config
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(private_config).st_mode) == 0o700
    assert signing_key().fingerprint == key.fingerprint  # made once, then read
    assert not any(p.name.endswith(".pem") for p in tiny_run.rglob("*"))  # nothing written into a run


def test_a_key_folder_inside_a_run_directory_is_refused(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENFORGE_CONFIG", str(tiny_run / "keys"))
    with pytest.raises(ProvenanceError, match="inside the run directory"):
        signing_key()
    assert main(["sample", str(tiny_run), "--n", "2", "--grid", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "never travel with a run" in err[0]
    assert not (tiny_run / "keys").exists()


def test_a_key_file_others_can_read_is_refused(private_config):
    path = signing_key().path
    os.chmod(path, 0o644)
    with pytest.raises(ProvenanceError, match="chmod 600"):
        signing_key()


def test_keys_new_keeps_the_old_key_as_a_backup(signed_grid, private_config, capsys):
    old = signing_key()
    old_pem = old.path.read_bytes()
    assert main(["keys", "new"]) == 0
    out = capsys.readouterr().out
    backups = sorted(private_config.glob("signing-key.*.pem"))
    assert len(backups) == 1 and backups[0].read_bytes() == old_pem and str(backups[0]) in out
    new = signing_key()
    assert new.fingerprint != old.fingerprint and new.fingerprint in out
    assert stat.S_IMODE(os.stat(backups[0]).st_mode) == 0o600
    result = verify_file(signed_grid)  # signed by the old key: still verifies, still this machine's
    assert result["status"] == "signed" and result["key"] == old.fingerprint and result["own"] is True

    assert main(["keys", "new"]) == 0  # a second one in the same second keeps both backups
    assert len(list(private_config.glob("signing-key.*.pem"))) == 2
    assert main(["keys", "show"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("earlier:") == 2 and old.fingerprint in shown and signing_key().fingerprint in shown


def test_keys_show_and_export_give_the_public_key_only(tmp_path, capsys):
    assert main(["keys", "show"]) == 0
    shown = capsys.readouterr().out
    key = signing_key()
    assert "made this machine's signing key" in shown and key.fingerprint in shown and str(key.path) in shown
    assert main(["keys", "export"]) == 0
    pem = capsys.readouterr().out
    assert pem == key.public_pem().decode() and "PUBLIC KEY" in pem and "PRIVATE" not in pem
    assert main(["keys", "export", "--out", str(tmp_path / "pub.pem")]) == 0
    assert (tmp_path / "pub.pem").read_bytes() == key.public_pem()
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    assert load_pem_public_key(key.public_pem()).public_bytes_raw() == key.public_raw
    capsys.readouterr()
    assert main(["keys", "show", "--out", str(tmp_path / "x.pem")]) == 2
    assert "--out belongs to `genforge keys export`" in capsys.readouterr().err
    assert main(["keys", "export", "--out", str(key.path)]) == 2
    assert "private key's own file" in capsys.readouterr().err
    assert b"PRIVATE" in key.path.read_bytes()  # untouched


# --- turning it off, and the CLI's readers ---------------------------------------------------------
def test_no_sign_writes_no_chunk(tiny_run, tmp_path):
    sample(tiny_run, tmp_path / "g.png", "--grid", "--no-sign")
    sample(tiny_run, tmp_path / "each", "--no-sign")
    assert main(["edit", str(tiny_run), "--input", "mnist:test:0-1", "--op", "reconstruct", "--no-progress",
                 "--out", str(tmp_path / "e.png"), "--no-sign"]) == 0
    for path in [tmp_path / "g.png", tmp_path / "e.png", *(tmp_path / "each").glob("*.png")]:
        assert chunk_text(path) is None and verify_file(path)["status"] == "none"
    assert signing_key(create=False) is None  # and no key was made for it


def test_an_edit_is_signed_with_its_op_and_the_digests_of_its_inputs(tiny_run, tmp_path):
    from genforge.data import load_slice
    assert main(["edit", str(tiny_run), "--input", "mnist:test:0-2", "--op", "reconstruct", "--no-progress",
                 "--out", str(tmp_path / "edit.png")]) == 0
    result = verify_file(tmp_path / "edit.png")
    expected = digests(load_slice("mnist:test:0-2", 28).images)
    assert result["status"] == "signed" and result["operation"] == "edit:reconstruct"
    assert result["inputs"] == expected and result["parameters"]["seed"] == 0
    # an input's digest is the digest a PNG of it records: an edit of a signed image names that image
    with Image.open(tmp_path / "edit.png") as picture:
        assert picture.size[0] > 28  # the comparison picture: inputs above results
    assert main(["edit", str(tiny_run), "--input", "mnist:test:0-2", "--op", "reconstruct", "--no-progress",
                 "--out", str(tmp_path / "each")]) == 0
    for i, path in enumerate(sorted((tmp_path / "each").glob("*.png"))):
        one = verify_file(path)
        assert one["status"] == "signed" and one["inputs"] == [expected[i]]


def test_the_verify_command_prints_each_verdict_and_exits_0(signed_grid, tmp_path, capsys):
    resave(signed_grid, tmp_path / "plain.png")
    with Image.open(signed_grid) as image:
        array = np.asarray(image).copy()
    array[0, 0] ^= 1
    resave(signed_grid, tmp_path / "pixel.png", pixels=array, text=chunk_text(signed_grid))
    key = signing_key(create=False).fingerprint
    assert main(["verify", str(signed_grid), str(tmp_path / "plain.png"), str(tmp_path / "pixel.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("signed") and f"signed by key {key} (this machine's key)" in lines[0]
    assert "made by vae (mnist" in lines[0] and "with sample" in lines[0]
    assert lines[1].startswith("none") and "origin is unknown" in lines[1]
    assert lines[2].startswith("broken") and "pixels changed" in lines[2]
    assert lines[3] == "3 checked: 1 signed, 1 broken, 1 without a manifest (unknown origin)"

    assert main(["verify", str(tmp_path), "--json"]) == 0  # a folder: its images
    body = json.loads(capsys.readouterr().out)
    by_name = {os.path.basename(r["image"]): r for r in body["images"]}
    assert {n: r["status"] for n, r in by_name.items()} == {"grid.png": "signed", "plain.png": "none",
                                                            "pixel.png": "broken"}
    assert by_name["grid.png"]["key"] == key and by_name["grid.png"]["model"]["family"] == "vae"


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing.png", "no such file or folder"),
    (lambda d: (d / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image") and d / "junk.png",
     "not a readable image"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no image files in this folder"),
])
def test_verify_refuses_a_bad_path_in_one_line(signed_grid, tmp_path, capsys, make, says):
    bad = make(tmp_path)
    assert main(["verify", str(signed_grid), str(bad)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and err[0].startswith("genforge: error: ")
    assert captured.out == ""  # nothing printed before the refusal


def test_detect_output_has_a_provenance_field(serve_runs, tmp_path, capsys):
    folder = tmp_path / "in"
    sample(serve_runs["cvae"], folder)
    resave(folder / "00000.png", folder / "plain.png")
    assert main(["detect", str(serve_runs["detector"]), str(folder), "mnist:test:0-0",
                 "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    verdicts = {v["image"]: v for v in json.loads((tmp_path / "v.json").read_text())["images"]}
    signed = verdicts["00000.png"]["provenance"]
    assert signed["status"] == "signed" and signed["own"] is True and signed["model"]["family"] == "cvae"
    assert verdicts["plain.png"]["provenance"]["status"] == "none"
    assert verdicts["mnist:test:0"]["provenance"]["status"] == "none"
    assert f"signed by key {signed['key']} (this machine's key): cvae sample" in out


# --- the server ----------------------------------------------------------------------------------
@pytest.fixture
def client(serve_runs):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from genforge.serve.app import create_app
    from genforge.serve.config import ServeConfig
    from genforge.serve.registry import Registry
    registry = Registry.load([serve_runs["cvae"]], serve_runs["detector"])
    with TestClient(create_app(ServeConfig(max_images=16), registry), base_url="http://127.0.0.1") as c:
        yield c


def test_the_servers_pngs_are_signed_and_its_detect_reads_provenance(client, serve_runs):
    key = signing_key(create=False)
    assert key is not None  # made when the app started
    grid = client.post("/v1/models/cvae/sample", json={"n": 4, "seed": 1, "format": "grid"})
    result = verify_bytes(grid.content)
    weights = hashlib.sha256((serve_runs["cvae"] / "model.safetensors").read_bytes()).hexdigest()
    assert result["status"] == "signed" and result["key"] == key.fingerprint and result["own"] is True
    assert result["operation"] == "sample" and result["parameters"]["seed"] == 1
    assert result["model"]["family"] == "cvae" and result["model"]["weights_sha256"] == weights
    body = client.post("/v1/models/cvae/sample", json={"n": 2, "seed": 1}).json()
    for i, text in enumerate(body["images"]):
        assert verify_bytes(base64.b64decode(text))["status"] == "signed"
        assert json.loads(read_chunk(Image.open(io.BytesIO(base64.b64decode(text)))))["manifest"]["index"] == i
    assert verify_bytes(base64.b64decode(body["grid"]))["status"] == "signed"

    edited = client.post("/v1/models/cvae/edit/reconstruct", data={"test_indices": "0,1"}).json()
    inputs = [verify_bytes(base64.b64decode(text))["status"] for text in edited["inputs"]]
    assert inputs == ["none", "none"]  # the inputs are not the model's work
    for i, text in enumerate(edited["images"]):
        one = verify_bytes(base64.b64decode(text))
        picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(edited["inputs"][i]))))
        assert one["status"] == "signed" and one["operation"] == "edit:reconstruct"
        assert one["inputs"] == digests(picture[None, None])  # its own input, as the answer shows it

    plain = io.BytesIO()
    Image.open(io.BytesIO(grid.content)).crop((2, 2, 30, 30)).save(plain, format="PNG")
    first = base64.b64decode(body["images"][0])
    files = [("images", ("signed.png", first, "image/png")), ("images", ("plain.png", plain.getvalue(), "image/png"))]
    answer = client.post("/v1/detect", files=files)
    assert answer.status_code == 200, answer.text
    signed, unsigned = (r["provenance"] for r in answer.json()["results"])
    assert signed["status"] == "signed" and signed["key"] == key.fingerprint and signed["own"] is True
    assert signed["model"]["family"] == "cvae" and signed["operation"] == "sample"
    assert unsigned["status"] == "none" and unsigned["key"] is None
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "provenance" in schema["Verdict"]["required"] and "Provenance" in schema


# --- C2PA content credentials (optional: c2pa-python) ---------------------------------------------
def with_chunk_text(data: bytes, old: bytes, new: bytes) -> bytes:
    """PNG bytes with `old` replaced by `new` inside the genforge iTXt chunk, its CRC made right
    again: a manifest edited by someone who knows the PNG format."""
    import struct
    import zlib
    out, at = bytearray(data[:8]), 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"iTXt" and body.startswith(KEYWORD.encode()):
            assert old in body
            body = body.replace(old, new)
        out += struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", zlib.crc32(kind + body))
        at += 12 + length
    return bytes(out)


def test_c2pa_credentials_are_added_trusted_here_and_cover_the_genforge_chunk(tiny_run, tmp_path, private_config,
                                                                             monkeypatch, capsys):
    pytest.importorskip("c2pa")
    sample(tiny_run, tmp_path / "c.png", "--grid", "--c2pa")
    result = verify_file(tmp_path / "c.png")
    assert result["status"] == "signed" and result["operation"] == "sample"  # genforge's own chunk still holds
    assert result["c2pa"]["state"] == "Trusted" and result["c2pa"]["trusted_here"] is True
    assert result["c2pa"]["failures"] == []
    for name in ("root-key.pem", "signer-key.pem"):
        assert stat.S_IMODE(os.stat(private_config / "c2pa" / name).st_mode) == 0o600
    assert main(["verify", str(tmp_path / "c.png")]) == 0
    assert "C2PA credentials trusted (this machine's certificates)" in capsys.readouterr().out

    data = (tmp_path / "c.png").read_bytes()
    (tmp_path / "edited.png").write_bytes(with_chunk_text(data, b'"seed":3', b'"seed":4'))
    edited = verify_file(tmp_path / "edited.png")
    assert edited["status"] == "broken" and edited["c2pa"]["state"] == "Invalid"  # C2PA's hash covers the chunk

    monkeypatch.setenv("GENFORGE_CONFIG", str(tmp_path / "elsewhere"))  # a machine without this root
    other = verify_file(tmp_path / "c.png")
    assert other["c2pa"]["state"] == "Valid" and other["c2pa"]["trusted_here"] is False
    assert other["c2pa"]["failures"] == ["signingCredential.untrusted"]


def test_c2pa_refusals_are_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    for extra, says in ((["--grid", "--no-sign"], "drop --no-sign"), ([], "writes none")):
        out = tmp_path / ("g.png" if extra else "s.npz")
        assert main(["sample", str(tiny_run), "--n", "2", "--out", str(out), "--c2pa", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0]
    from genforge.provenance import credentials
    monkeypatch.setattr(credentials, "available", lambda: False)
    assert main(["sample", str(tiny_run), "--n", "2", "--grid", "--out", str(tmp_path / "g.png"), "--c2pa"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'genforge[c2pa]'" in err[0]
    assert not (tmp_path / "g.png").exists()
