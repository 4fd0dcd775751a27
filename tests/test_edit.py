"""Editing real MNIST digits through trained models: each edit does what it says."""

import dataclasses

import pytest
import torch

import genforge
from genforge.cli import main
from genforge.edit import (Editor, FitConfig, as_float, box_mask, centre_mask, composite, fit_latents,
                           inpaint, interpolate, mean_fill, nearest_fill, read_images, read_mask, sefa_directions,
                           slant)
from genforge.edit.inpaint import _guesses, nearest_indices
from genforge.edit.invert import encode
from genforge.edit.swap_class import swap_class
from genforge.errors import DataError, GenforgeError
from genforge.models import MODELS, build_model
from genforge.models.gan_networks import ConditionalBatchNorm2d

QUICK_SEARCH = FitConfig(steps=40, restarts=2)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, mnist_train):
    out = tmp_path_factory.mktemp("vae")
    genforge.train("vae", "mnist", out, steps=300, batch_size=64, width=16, latent_dim=8, progress=False,
                   report=False, seed=0)
    return out


@pytest.fixture(scope="module")
def editor(vae_run):
    return Editor(genforge.load(vae_run), QUICK_SEARCH)


@pytest.fixture(scope="module")
def digits():
    return read_images("mnist:test:0-63", (1, 28, 28))


def test_inputs_read_files_folders_and_slices(tmp_path, digits):
    from PIL import Image
    Image.fromarray(digits.images[0, 0].numpy()).resize((56, 40)).convert("RGB").save(tmp_path / "big.png")
    one = read_images(str(tmp_path / "big.png"), (1, 28, 28))
    assert one.images.shape == (1, 1, 28, 28) and one.images.float().mean() > 10
    assert len(read_images(str(tmp_path), (1, 28, 28))) == 1
    assert digits.labels[:3].tolist() == [7, 2, 1]
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="not an image"):
        read_images(str(tmp_path / "notes.txt"), (1, 28, 28))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable"):
        read_images(str(tmp_path / "empty"), (1, 28, 28))
    with pytest.raises(DataError, match="has 10000"):
        read_images("mnist:test:9990-10009", (1, 28, 28))


def test_masks_from_boxes_and_pngs(tmp_path):
    from PIL import Image
    mask = box_mask("2,3,10,5", 28)
    assert mask.sum() == 8 * 2 and mask[0, 0, 3, 2] == 1 and mask[0, 0, 5, 2] == 0
    Image.fromarray((mask[0, 0].numpy() * 255).astype("uint8")).save(tmp_path / "m.png")
    assert torch.equal(read_mask(tmp_path / "m.png", 28), mask)
    Image.new("L", (32, 32), 255).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="must be the image's size"):
        read_mask(tmp_path / "big.png", 28)
    with pytest.raises(DataError, match="not inside"):
        box_mask("0,0,29,5", 28)


def test_interpolation_ends_are_the_codes_and_their_reconstructions(editor, digits):
    x = as_float(digits)[:4]
    z = editor.invert(x)
    for method in ("lerp", "slerp"):
        path = interpolate(z[:2], z[2:], 5, method)
        torch.testing.assert_close(path[:, 0], z[:2], atol=1e-5, rtol=0)
        torch.testing.assert_close(path[:, -1], z[2:], atol=1e-5, rtol=0)
    frames = editor.interpolate(x[:2], x[2:], steps=5)
    recon = editor.reconstruct(x)
    torch.testing.assert_close(frames[0], recon[:2], atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[-1], recon[2:], atol=1e-5, rtol=0)
    # slerp keeps the norm between those of its ends; the straight line dips inside
    mid_lerp, mid_slerp = interpolate(z[:1], -z[:1] + 1e-3, 3, "lerp")[0, 1], interpolate(z[:1], z[1:2], 3)[0, 1]
    assert mid_lerp.norm() < 0.01 * z[0].norm()
    assert mid_slerp.norm() >= 0.99 * min(z[0].norm(), z[1].norm())


@pytest.mark.parametrize("method", ["vector", "transport"])
def test_attribute_edit_turns_digits_into_the_target_class(editor, digits, method):
    x = as_float(digits)
    not_eights = digits.labels != 8
    edited = editor.attribute(x[not_eights], target=8, method=method)
    reads = editor.reads(edited)
    assert (reads == 8).float().mean() > 0.6
    assert (editor.reads(x[not_eights]) == 8).float().mean() < 0.05
    none = editor.attribute(x[not_eights], target=8, method=method, strength=0.0)
    torch.testing.assert_close(none, editor.reconstruct(x[not_eights]), atol=1e-5, rtol=0)


def test_slant_measures_a_sheared_digit():
    upright = torch.zeros(1, 1, 28, 28)
    upright[..., 4:24, 13:15] = 1
    leaning = torch.zeros_like(upright)
    for row in range(4, 24):  # top to the right, bottom to the left
        col = 13 + (14 - row) // 3
        leaning[..., row, col:col + 2] = 1
    assert abs(slant(upright).item()) < 1e-6 and slant(leaning).item() > 0.2


def test_inpainting_changes_only_the_mask_and_beats_the_mean(editor, digits):
    x = as_float(digits)[:16]
    mask = centre_mask(28, 14)
    filled = editor.inpaint(x, mask)
    outside = ~mask.bool().expand_as(x)
    assert torch.equal(filled[outside], x[outside])
    assert not torch.equal(filled, x)

    def masked_mse(y):
        return ((y - x).pow(2) * mask).sum() / (mask.sum() * len(x))
    assert masked_mse(filled) < masked_mse(mean_fill(x, mask, editor.train.images[:5000].float() / 255))
    blended = composite(x, filled, mask.expand_as(x), blend=1.0)
    assert not torch.equal(blended[outside], x[outside])
    assert torch.equal(blended[mask.bool().expand_as(x)], filled[mask.bool().expand_as(x)])


def test_nearest_indices_find_each_image_first(mnist_small):
    train = mnist_small.images[:500].float() / 255
    x, mask = train[100:110], centre_mask(28, 14)
    found = nearest_indices(x, mask, train, k=3)
    assert found.shape == (10, 3) and torch.equal(found[:, 0], torch.arange(100, 110))
    assert not (found[:, 1:] == torch.arange(100, 110)[:, None]).any()  # the next ones are other images
    assert torch.equal(nearest_fill(x, mask, train), x)  # each hole filled from the image itself


def test_inpainting_starts_from_training_neighbours(editor, mnist_small):
    # Images whose twins are in the training set: a neighbour's code holds what the hole hides,
    # the encoder's guess from the holed image does not. No search steps: the fills are the
    # decoded starts themselves, so this shows which codes the search starts from.
    train = mnist_small.images[:1000].float() / 255
    x, mask = train[:24], centre_mask(28, 14)
    starts = dataclasses.replace(QUICK_SEARCH, steps=0)
    plain = inpaint(editor.model, x, mask, fit=starts, prior=editor.search_prior)
    near = inpaint(editor.model, x, mask, fit=starts, prior=editor.search_prior, neighbours=4, train=(train, None))

    def masked_mse(y):
        return float(((y - x).pow(2) * mask).sum() / (mask.sum() * len(x)))
    assert masked_mse(near) < 0.85 * masked_mse(plain), (masked_mse(near), masked_mse(plain))  # 0.111 vs 0.141
    outside = ~mask.bool().expand_as(x)
    assert torch.equal(near[outside], x[outside])
    with pytest.raises(GenforgeError, match="training images"):
        inpaint(editor.model, x, mask, fit=starts, neighbours=4)


def test_a_class_searching_model_guesses_each_neighbour_under_its_own_label(mnist_small):
    torch.manual_seed(0)
    cvae = build_model("cvae", width=8, latent_dim=8).eval()
    train, labels = mnist_small.images[:300].float() / 255, mnist_small.labels[:300]
    x, known = train[:5], 1 - centre_mask(28, 14)
    codes, code_labels = _guesses(cvae, x, known, None, 3, (train, labels), None)
    assert codes.shape == (5, 10 + 3, 8)  # the encoder's guess under every class, then the neighbours
    assert torch.equal(code_labels[:, :10], torch.arange(10).expand(5, 10))
    assert torch.equal(code_labels[:, 10], labels[:5])  # the nearest is the image itself, under its label
    torch.testing.assert_close(codes[:, 10], encode(cvae, x, labels[:5]))


def test_neighbours_need_an_encoder():
    gan = build_model("dcgan", g_width=8, d_width=8, latent_dim=8)
    run = genforge.api.Model(gan, {"data": {"dataset": "mnist"}})
    with pytest.raises(GenforgeError, match="hybrid"):
        Editor(run, neighbours=4)


def test_gan_inversion_lowers_the_loss_from_its_start(mnist_small):
    torch.manual_seed(0)
    gan = build_model("dcgan", g_width=8, d_width=8, latent_dim=16).eval()
    x = mnist_small.images[:16].float() / 255
    fit = fit_latents(gan, x, config=FitConfig(steps=15, restarts=2))
    assert fit.z.shape == (16, 16)
    assert (fit.loss < fit.start_loss).float().mean() > 0.9


def test_screened_starts_begin_closer_than_blind_draws(mnist_small):
    torch.manual_seed(0)
    gan = build_model("dcgan", g_width=8, d_width=8, latent_dim=16).eval()
    x = mnist_small.images[:32].float() / 255
    blind = fit_latents(gan, x, config=FitConfig(steps=0, restarts=2, candidates=0))
    screened = fit_latents(gan, x, config=FitConfig(steps=0, restarts=2, candidates=64))
    assert screened.start_loss.mean() < blind.start_loss.mean()


def test_search_under_the_fitted_prior_keeps_codes_where_it_is_dense(editor, digits):
    prior = editor.search_prior
    assert prior is not None and prior.kind == "gmm"  # training fitted it
    x, known = as_float(digits)[:32], 1 - centre_mask(28, 14)
    model = editor.model
    under_normal = fit_latents(model, x, known=known, config=QUICK_SEARCH)
    under_prior = fit_latents(model, x, known=known, config=QUICK_SEARCH, prior=prior)
    assert prior.log_prob(under_prior.z).mean() > prior.log_prob(under_normal.z).mean()
    flow = genforge.priors.FlowPrior(prior.dim)
    with pytest.raises(GenforgeError, match="needs a prior with a density"):
        fit_latents(model, x, known=known, config=QUICK_SEARCH, prior=flow)


def test_a_conditional_model_without_labels_searches_the_class():
    torch.manual_seed(0)
    cgan = build_model("cgan", g_width=8, d_width=8, latent_dim=8).eval()
    for m in cgan.modules():  # at initialisation the label changes nothing; training makes it matter
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.shift.weight)
    target_labels = torch.arange(12) % 10
    with torch.no_grad():  # targets the model can make exactly: its own images of known classes
        x = cgan.generate(torch.randn(12, 8), target_labels)
    search = FitConfig(steps=20, restarts=2, candidates=40)
    found = fit_latents(cgan, x, config=search)
    assert (found.labels == target_labels).float().mean() > 0.8
    given_wrong = fit_latents(cgan, x, (target_labels + 5) % 10, config=search)
    assert found.loss.mean() < given_wrong.loss.mean()
    filled = inpaint(cgan, x, centre_mask(28, 14), fit=search)
    assert filled.shape == x.shape


def test_the_best_guess_under_any_class_takes_the_last_start():
    torch.manual_seed(0)
    cvae = build_model("cvae", width=8, latent_dim=8).eval()
    true_z, true_labels = torch.randn(6, 8), torch.tensor([0, 3, 5, 7, 9, 2])
    with torch.no_grad():
        x = cvae.generate(true_z, true_labels)
    guesses = torch.randn(6, 10, 8)  # wrong codes under every class but the true one
    guesses[torch.arange(6), true_labels] = true_z
    search = FitConfig(steps=1, restarts=2, candidates=10, prior_weight=0.0)
    found = fit_latents(cvae, x, init=guesses, config=search)
    assert torch.equal(found.labels, true_labels)
    assert found.start_loss.max() < 1e-10  # the exact guess was picked and started the search


def test_inpainting_samples_average_distinct_completions(digits):
    torch.manual_seed(0)
    gan = build_model("dcgan", g_width=8, d_width=8, latent_dim=16).eval()
    x, mask = as_float(digits)[:8], centre_mask(28, 14)
    search = FitConfig(steps=5, restarts=2, candidates=8)
    singles = [inpaint(gan, x, mask, fit=dataclasses.replace(search, seed=k)) for k in range(3)]
    assert not torch.equal(singles[0], singles[1])  # each seed finds its own completion
    torch.testing.assert_close(inpaint(gan, x, mask, fit=search, samples=3), torch.stack(singles).mean(0))


def test_sefa_directions_are_unit_and_ordered():
    torch.manual_seed(0)
    gan = build_model("dcgan", g_width=8, d_width=8, latent_dim=16)
    dirs, eigenvalues = sefa_directions(gan, 5)
    torch.testing.assert_close(dirs.norm(dim=1), torch.ones(5))
    assert (eigenvalues[:-1] >= eigenvalues[1:]).all()
    w = gan.first_layer_weight().detach()
    torch.testing.assert_close((w @ dirs.T).pow(2).sum(0), eigenvalues, rtol=1e-4, atol=1e-4)


def test_swap_class_needs_a_conditional_model(editor, digits):
    with pytest.raises(GenforgeError, match="not conditional"):
        editor.swap_class(as_float(digits)[:2], digits.labels[:2], 3)


@pytest.mark.slow  # the label takes a thousand steps to steer the decoder
@pytest.mark.skipif("cvae" not in MODELS, reason="the conditional VAE is not registered yet")
@pytest.mark.slow
def test_swap_class_moves_a_code_that_holds_the_class(tmp_path, mnist_train, digits, capsys):
    """The swap with a conditional VAE, in the library and from the command line. (One model for
    both: a second test of the same swap on a cvae of the default KL weight cost CI 50 s and
    showed the same thing less clearly, 67% read as the target class.)"""
    # Almost no KL weight: the code keeps the class, and the decoder follows the code, not the label.
    run = genforge.train("cvae", "mnist", tmp_path / "loose", steps=1000, batch_size=64, width=16, latent_dim=16,
                         beta=0.01, progress=False, report=False, prior="none")
    editor = Editor(run)
    x, not_threes = as_float(digits), digits.labels != 3
    label_only = swap_class(editor.model, x[not_threes], digits.labels[not_threes], 3)
    moved = editor.swap_class(x[not_threes], digits.labels[not_threes], 3)
    read_three = [float((editor.reads(images) == 3).float().mean()) for images in (label_only, moved)]
    assert read_three[0] < 0.2 and read_three[1] > 0.7, read_three  # 2% and 97% here
    # the same from the command line, where --label-only gives the swap of the label alone
    reads = {}
    for flag in ([], ["--label-only"]):
        assert main(["edit", str(run.run_dir), "--input", "mnist:test:0-63", "--op", "swap-class", "--to", "3",
                     *flag, "--out", str(tmp_path / "x.png"), "--no-progress"]) == 0
        reads[bool(flag)] = int(capsys.readouterr().out.split("classifier reads class 3 in ")[1].split("%")[0])
    assert reads[True] < 25 < 60 < reads[False], reads
    # a strength for a move that --label-only does not make is refused in one line
    assert main(["edit", str(run.run_dir), "--input", "mnist:test:0-3", "--op", "swap-class", "--to", "3",
                 "--label-only", "--strength", "1.5", "--out", str(tmp_path / "x.png"), "--no-progress"]) == 2
    assert "--label-only moves none" in capsys.readouterr().err


def test_swap_strength_scales_the_code_move():
    from genforge.edit.invert import generate, invert
    from genforge.edit.transport import ClassGaussians
    torch.manual_seed(0)
    cvae = build_model("cvae", width=8, latent_dim=4).eval()
    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) * 0.5 + 3])
    classes = ClassGaussians.fit(codes, torch.arange(400) // 200, 2)
    x, source, target = torch.rand(5, 1, 28, 28, generator=g), torch.zeros(5, dtype=torch.long), torch.ones(5).long()
    z = invert(cvae, x, source)
    moved = classes.transport(z, source, target)
    swap = {s: swap_class(cvae, x, source, 1, classes=classes, strength=s) for s in (0.0, 1.0, 1.25)}
    torch.testing.assert_close(swap[0.0], swap_class(cvae, x, source, 1))  # no move: the label alone
    torch.testing.assert_close(swap[1.0], generate(cvae, moved, target))  # onto the target class's place
    torch.testing.assert_close(swap[1.25], generate(cvae, moved + 0.25 * (moved - z), target))  # a quarter past


def test_cli_swap_strength_is_refused_where_no_code_moves(tmp_path, mnist_train, capsys):
    run = tmp_path / "cgan"
    genforge.train("cgan", "mnist", run, steps=5, batch_size=32, g_width=8, d_width=8, progress=False,
                   report=False, seed=0)
    assert main(["edit", str(run), "--input", "mnist:test:0-3", "--op", "swap-class", "--to", "3",
                 "--strength", "1.5", "--out", str(tmp_path / "x.png"), "--no-progress"]) == 2
    assert "keeps its code" in capsys.readouterr().err


@pytest.mark.parametrize("op", [["reconstruct"], ["interpolate", "--format", "gif"], ["attribute", "--to", "8"],
                                ["inpaint", "--box", "7,7,21,21", "--samples", "2", "--candidates", "8"],
                                ["inpaint", "--box", "7,7,21,21", "--neighbours", "2"],
                                ["directions", "--method", "pca"]])
def test_cli_runs_each_edit(vae_run, tmp_path, capsys, op):
    out = tmp_path / ("edit.gif" if "gif" in op else "edit.png")
    assert main(["edit", str(vae_run), "--input", "mnist:test:0-15", "--op", *op, "--out", str(out),
                 "--search-steps", "20", "--restarts", "1", "--no-progress"]) == 0
    assert out.stat().st_size > 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


@pytest.mark.parametrize("choice", ["fitted", "normal"])
def test_cli_inpaint_names_the_prior_it_searched_under(vae_run, tmp_path, capsys, choice):
    assert main(["edit", str(vae_run), "--input", "mnist:test:0-7", "--op", "inpaint", "--box", "7,7,21,21",
                 "--out", str(tmp_path / "x.png"), "--search-steps", "5", "--search-prior", choice,
                 "--no-progress"]) == 0
    assert ("model, gmm prior" in capsys.readouterr().out) == (choice == "fitted")


def test_cli_inpaints_unlabelled_images_with_a_conditional_model(tmp_path, mnist_train, capsys):
    from PIL import Image
    run = tmp_path / "cgan"
    genforge.train("cgan", "mnist", run, steps=20, batch_size=32, g_width=8, d_width=8, progress=False,
                   report=False, seed=0)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(read_images("mnist:test:0-3", (1, 28, 28)).images):
        Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    assert main(["edit", str(run), "--input", str(folder), "--op", "inpaint", "--box", "0,14,28,28",
                 "--out", str(tmp_path / "x.png"), "--search-steps", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "class found by the search" in out and "discriminator P(real)" in out


@pytest.mark.parametrize("args, message", [
    (["--input", "nothing.png", "--op", "reconstruct"], "no such file"),
    (["--input", "mnist:test:0-3", "--op", "attribute", "--to", "12"], "class 12 does not exist"),
    (["--input", "mnist:test:0-3", "--op", "attribute", "--to", "8", "--method", "lerp"], "unknown attribute method"),
    (["--input", "mnist:test:0-3", "--op", "attribute", "--to", "slant", "--method", "transport"], "for classes"),
    (["--input", "mnist:test:0-3", "--op", "swap-class", "--to", "3"], "not conditional"),
    (["--input", "mnist:test:0-3", "--op", "inpaint", "--box", "1,2,3"], "bad box"),
    (["--input", "mnist:test:0-3", "--op", "inpaint", "--box", "7,7,21,21", "--samples", "0"], "positive"),
    (["--input", "mnist:test:0-3", "--op", "directions", "--method", "sefa"], "no linear first layer"),
])
def test_cli_bad_input_is_one_line_and_exit_2(vae_run, tmp_path, capsys, args, message):
    assert main(["edit", str(vae_run), *args, "--out", str(tmp_path / "x.png"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_hybrid_inversion_encoder_guesses_codes_and_is_kept_in_the_run(tmp_path, mnist_train, monkeypatch):
    from genforge.edit.encoder import FILE, EncoderConfig, guess_codes, inversion_encoder
    run = genforge.train("dcgan", "mnist", tmp_path / "gan", steps=100, batch_size=32, g_width=8, d_width=8,
                         latent_dim=16, progress=False, report=False)
    gan = run.module
    encoder = inversion_encoder(gan, run.run_dir, EncoderConfig(steps=200, batch_size=32))
    assert (run.run_dir / FILE).is_file()
    z = gan.latent(256, torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = gan.generate(z)
        guessed = gan.generate(guess_codes(encoder, x))
        random = gan.generate(gan.latent(256, torch.Generator().manual_seed(2)))
    # the guess decodes to (nearly) the same picture; a random code does not
    assert (guessed - x).pow(2).mean() < 0.5 * (random - x).pow(2).mean()
    again = inversion_encoder(gan, run.run_dir, EncoderConfig(steps=1))  # loaded, not retrained
    torch.testing.assert_close(guess_codes(again, x), guess_codes(encoder, x))
    weights = run.run_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same weights: still the same encoder
    torch.testing.assert_close(guess_codes(inversion_encoder(gan, run.run_dir), x), guess_codes(encoder, x))
    genforge.train("dcgan", "mnist", run.run_dir, steps=110, batch_size=32, resume=True, progress=False,
                   report=False)  # trained further: the old encoder no longer fits and is replaced
    assert not torch.equal(guess_codes(inversion_encoder(gan, run.run_dir, EncoderConfig(steps=1)), x),
                           guess_codes(encoder, x))
    # the CLI's --hybrid asks for the run's encoder and uses the kept one: loaded, not rewritten
    import genforge.edit.pipeline as pipeline
    asked = []
    monkeypatch.setattr(pipeline, "inversion_encoder", lambda *a, **k: asked.append(a) or inversion_encoder(*a, **k))
    kept = (run.run_dir / FILE).stat().st_mtime_ns
    assert main(["edit", str(run.run_dir), "--input", "mnist:test:0-3", "--op", "reconstruct", "--hybrid",
                 "--search-steps", "5", "--restarts", "1", "--out", str(tmp_path / "inv.png"), "--no-progress"]) == 0
    assert len(asked) == 1 and (run.run_dir / FILE).stat().st_mtime_ns == kept
    # latent search from the guess ends lower than from random starts with the same budget
    target = mnist_train.images[:64].float() / 255
    config = FitConfig(steps=20, restarts=1)
    hybrid = Editor(run, config, hybrid=True)
    plain = Editor(run, config)
    loss = lambda e: (gan.generate(e.invert(target)).detach() - target).pow(2).mean()  # noqa: E731
    assert loss(hybrid) < loss(plain)


def test_transport_between_class_gaussians_matches_their_moments():
    from genforge.edit.transport import ClassGaussians
    g = torch.Generator().manual_seed(0)
    # two classes with different centres and spreads in 3-D
    a = torch.randn(4000, 3, generator=g) * torch.tensor([1.0, 0.2, 0.5])
    b = torch.randn(4000, 3, generator=g) @ torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.3]]) + 5
    classes = ClassGaussians.fit(torch.cat([a, b]), torch.cat([torch.zeros(4000), torch.ones(4000)]).long(), 2)
    moved = classes.transport(a, torch.zeros(4000).long(), torch.ones(4000).long())
    torch.testing.assert_close(moved.mean(0), b.mean(0), atol=0.1, rtol=0)
    torch.testing.assert_close(torch.cov(moved.T), torch.cov(b.T), atol=0.1, rtol=0.05)
    # a code keeps its rank along the source's spread: the map is monotone (A is positive definite)
    a_map, _ = classes.map(0, 1)
    assert torch.linalg.eigvalsh((a_map + a_map.T) / 2).min() > 0
    same_class = classes.transport(a[:5], torch.zeros(5).long(), torch.zeros(5).long())
    torch.testing.assert_close(same_class, a[:5], atol=1e-5, rtol=0)  # from a class to itself: nowhere
    with pytest.raises(GenforgeError, match="too few"):
        ClassGaussians.fit(torch.randn(5, 3), torch.tensor([0, 0, 0, 0, 1]), 2)
