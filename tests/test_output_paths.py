"""Output paths: a suffix genforge does not write, a file where a folder is wanted, or a folder
that cannot be made is refused in one line, before any work, by every command that writes."""

import numpy as np
import pytest
import torch
from PIL import Image

from genforge.cli import main
from genforge.errors import GenforgeError, OutputPathError
from genforge.imageio import save_images
from genforge.output_paths import FOLDER, check_output, output_kind


def one_error_line(capsys, *argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genforge: error: "), err
    return err[0]




# --- the rule ------------------------------------------------------------------------------------
def test_the_kind_of_a_path(tmp_path):
    assert output_kind(tmp_path / "samples") == FOLDER
    assert output_kind(tmp_path / "grid.PNG") == ".png"
    (tmp_path / "looks.png").mkdir()
    assert output_kind(tmp_path / "looks.png") == FOLDER  # an existing folder is a folder, whatever its name
    assert check_output(tmp_path / "a" / "b" / "x.npz", (FOLDER, ".npz")) == ".npz"
    assert not (tmp_path / "a").exists()  # checking makes nothing


def test_refusals_name_the_path_and_what_is_accepted(tmp_path):
    with pytest.raises(OutputPathError) as caught:
        check_output(tmp_path / "y.txt", (FOLDER, ".npz"), "--out")
    assert str(caught.value) == (f"--out {tmp_path / 'y.txt'}: genforge does not write .txt files here; "
                                 "give a folder (a path without a suffix) or a .npz file")
    with pytest.raises(OutputPathError, match="has no suffix, so it names a folder; give a .json file"):
        check_output(tmp_path / "results", (".json",), "--json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OutputPathError, match="is an existing folder; give a .json file"):
        check_output(tmp_path / "dir.json", (".json",), "--json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is an existing file, not a folder"):
        check_output(tmp_path / "file", (FOLDER,), "--heatmap")
    with pytest.raises(OutputPathError, match=r"cannot make the folder .*file/sub: .*file is a file"):
        check_output(tmp_path / "file" / "sub" / "x.png", (".png",), "--sheet")
    assert issubclass(OutputPathError, GenforgeError)


def test_save_images_refuses_what_it_does_not_write(tmp_path):
    images = torch.rand(3, 1, 28, 28)
    for path, grid in ((tmp_path / "y.txt", False), (tmp_path / "y.png", False), (tmp_path / "y.npz", True),
                       (tmp_path / "y.jpg", True)):
        with pytest.raises(OutputPathError):
            save_images(images, path, grid=grid)
        assert not path.exists()
    assert len(list(save_images(images, tmp_path / "folder").iterdir())) == 3
    assert np.load(save_images(images, tmp_path / "a.NPZ"))["images"].shape == (3, 28, 28, 1)
    assert Image.open(save_images(images, tmp_path / "g.png", grid=True)).size[0] > 28
    assert save_images(images, tmp_path / "folder", grid=True) == tmp_path / "folder" / "grid.png"


# --- every command that writes ----------------------------------------------------------------------
def test_sample(tiny_run, tmp_path, capsys):
    assert "does not write .txt files" in one_error_line(capsys, "sample", tiny_run, "--out", tmp_path / "y.txt")
    assert "add --grid" in one_error_line(capsys, "sample", tiny_run, "--out", tmp_path / "y.png")
    assert "--grid writes one .png" in one_error_line(capsys, "sample", tiny_run, "--grid", "--out", tmp_path / "y.npz")
    (tmp_path / "taken").write_text("x")
    assert "existing file, not a folder" in one_error_line(capsys, "sample", tiny_run, "--out", tmp_path / "taken")
    assert "is a file" in one_error_line(capsys, "sample", tiny_run, "--out", tmp_path / "taken" / "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing written by the refusals
    assert main(["sample", str(tiny_run), "--n", "2", "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["00000.png", "00001.png"]


def test_a_bad_output_path_is_refused_before_the_run_is_read(tmp_path, capsys):
    # the run directory does not exist: the path is refused first, so no work is started
    assert "does not write .txt files" in one_error_line(capsys, "sample", tmp_path / "no-run", "--out",
                                                         tmp_path / "y.txt")


def test_edit(tiny_run, tmp_path, capsys):
    common = ["edit", tiny_run, "--input", "mnist:test:0-3", "--no-progress"]
    line = one_error_line(capsys, *common, "--op", "reconstruct", "--out", tmp_path / "x.gif")
    assert "does not write .gif files here; give a .png file, a folder (a path without a suffix) or a .npz" in line
    line = one_error_line(capsys, *common, "--op", "interpolate", "--out", tmp_path / "x.npz")
    assert "give a .png file or a .gif file" in line
    line = one_error_line(capsys, *common, "--op", "interpolate", "--format", "gif", "--out", tmp_path / "x.png")
    assert "--format gif writes an animation; give --out FILE.gif" in line
    assert list(tmp_path.iterdir()) == []
    assert main([*map(str, common), "--op", "interpolate", "--steps", "3", "--out", str(tmp_path / "i.gif")]) == 0
    assert Image.open(tmp_path / "i.gif").format == "GIF"
    assert main([*map(str, common), "--op", "reconstruct", "--out", str(tmp_path / "r.npz")]) == 0
    assert np.load(tmp_path / "r.npz")["images"].shape == (4, 28, 28, 1)


def test_eval(tiny_run, tmp_path, capsys):
    assert "give a .json file" in one_error_line(capsys, "eval", tiny_run, "--json", tmp_path / "r.txt")
    assert "has no suffix" in one_error_line(capsys, "eval", tiny_run, "--json", tmp_path / "results")
    line = one_error_line(capsys, "eval", "train-features", "--dataset", "mnist", "--out", tmp_path / "w.json")
    assert "give a folder" in line
    assert list(tmp_path.iterdir()) == []


def test_detect(tiny_run, tmp_path, capsys):
    judge = ["detect", tmp_path / "no-detector", "mnist:test:0-3"]
    assert "give a .json file" in one_error_line(capsys, *judge, "--json", tmp_path / "v.csv")
    (tmp_path / "taken").write_text("x")
    assert "existing file, not a folder" in one_error_line(capsys, *judge, "--heatmap", tmp_path / "taken")
    assert "give a .png file" in one_error_line(capsys, *judge, "--sheet", tmp_path / "s.jpg")
    line = one_error_line(capsys, "detect", "train", "--real", "mnist:train:0-63", "--fake", tiny_run,
                          "--out", tmp_path / "det.png", "--steps", "1")
    assert "--out" in line and "give a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_train(tmp_path, capsys):
    args = ["train", "--model", "vae", "--dataset", "mnist", "--steps", "1", "--out"]
    assert "does not write .txt files" in one_error_line(capsys, *args, tmp_path / "run.txt")
    (tmp_path / "taken").write_text("x")
    assert "existing file, not a folder" in one_error_line(capsys, *args, tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]

