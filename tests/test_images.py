"""load_images: named sets, IDX folders, .npz files, image folders, options and bad input."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.images import ImageSet, load_images
from genlab.errors import DataError


def _idx_bytes(a: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic (0, 0, 8, ndim), big-endian dims, the values."""
    header = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, dtype=">u4").tobytes()
    return header + a.astype(np.uint8).tobytes()


def _write_idx(folder: Path, prefix: str, x: np.ndarray, y: np.ndarray | None, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write = (
        (lambda p, b: p.write_bytes(gzip.compress(b))) if gz else (lambda p, b: p.write_bytes(b))
    )
    write(folder / f"{prefix}-images-idx3-ubyte{suffix}", _idx_bytes(x))
    if y is not None:
        write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", _idx_bytes(y))


def _rng_images(n: int, h: int, w: int, c: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def _one_line_error(spec, *args, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        load_images(str(spec), *args, progress=False, **kwargs)
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# ---- named sets ----------------------------------------------------------------------------


def test_digits_shapes_split_and_determinism():
    from sklearn.datasets import load_digits

    train, test = (
        load_images("digits", progress=False),
        load_images("digits", "test", progress=False),
    )
    assert isinstance(train, ImageSet) and train.name == "digits"
    assert train.x.shape == (1500, 1, 8, 8) and test.x.shape == (297, 1, 8, 8)
    assert train.x.dtype == torch.uint8 and train.y.dtype == torch.int64
    assert train.x.is_contiguous() and train.shape == (1, 8, 8)
    assert train.classes == [str(i) for i in range(10)] and train.num_classes == 10
    assert int(train.x.max()) == 255 and int(train.x.min()) == 0

    # The documented split: default_rng(0).permutation(1797), first 1500 train, last 297 test.
    d = load_digits()
    full = np.rint(d.images * 255 / 16).astype(np.uint8)
    perm = np.random.default_rng(0).permutation(1797)
    assert np.array_equal(train.x[:, 0].numpy(), full[perm[:1500]])
    assert np.array_equal(test.x[:, 0].numpy(), full[perm[1500:]])
    assert np.array_equal(test.y.numpy(), d.target[perm[1500:]])
    assert set(perm[:1500].tolist()).isdisjoint(perm[1500:].tolist())
    assert torch.cat([train.y, test.y]).bincount().tolist() == np.bincount(d.target).tolist()

    again = load_images("digits", progress=False)
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)


def test_mnist_from_a_folder_mirror(shared_data, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    train = load_images("mnist", progress=False)
    test = load_images("mnist", "test", progress=False)
    assert train.x.shape == (60000, 1, 28, 28) and train.x.dtype == torch.uint8
    assert test.x.shape == (10000, 1, 28, 28)
    assert train.y.shape == (60000,) and train.y.dtype == torch.int64
    assert sorted(train.y.unique().tolist()) == list(range(10)) == sorted(test.y.unique().tolist())
    assert train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first labels
    assert train.classes == [str(i) for i in range(10)]
    assert str(shared_data) in train.source


def test_text_set_is_not_images():
    assert "text" in _one_line_error("tinyshakespeare")


# ---- IDX folders ---------------------------------------------------------------------------


def test_idx_folder_gzipped_and_plain(tmp_path):
    x, y = _rng_images(30, 5, 7), np.arange(30) % 4
    xt, yt = _rng_images(6, 5, 7, seed=1), np.array([0, 1, 2, 3, 4, 0])
    _write_idx(tmp_path, "train", x, y, gz=True)
    _write_idx(tmp_path, "t10k", xt, yt, gz=False)
    train = load_images(str(tmp_path), progress=False)
    test = load_images(str(tmp_path), "test", progress=False)
    assert np.array_equal(train.x[:, 0].numpy(), x) and train.y.tolist() == y.tolist()
    assert np.array_equal(test.x[:, 0].numpy(), xt) and test.y.tolist() == yt.tolist()
    # Classes cover the labels of both splits, whichever split is loaded.
    assert train.classes == test.classes == ["0", "1", "2", "3", "4"]
    assert train.name == str(tmp_path)


def test_real_mnist_folder_as_a_path(shared_data):
    test = load_images(str(shared_data / "mnist"), "test", progress=False)
    assert test.x.shape == (10000, 1, 28, 28) and test.y.shape == (10000,)


def test_idx_folder_without_test_split_holds_out_ten_percent(tmp_path):
    x = _rng_images(50, 4, 4)
    x[:, 0, 0] = np.arange(50)  # tag each image with its index
    _write_idx(tmp_path, "fashion-train", x, np.arange(50) % 10, gz=True)
    train = load_images(str(tmp_path), progress=False)
    test = load_images(str(tmp_path), "test", progress=False)
    assert len(train.x) == 45 and len(test.x) == 5
    tr, te = train.x[:, 0, 0, 0].tolist(), test.x[:, 0, 0, 0].tolist()
    assert set(tr).isdisjoint(te) and sorted(tr + te) == list(range(50))
    assert te == np.random.default_rng(0).permutation(50)[45:].tolist()
    assert train.y.tolist() == [t % 10 for t in tr]
    assert load_images(str(tmp_path), "test", progress=False).x.equal(test.x)


def test_emnist_images_are_transposed(tmp_path):
    x = _rng_images(12, 6, 6)
    _write_idx(tmp_path, "emnist-digits-train", x, np.zeros(12, np.uint8), gz=False)
    _write_idx(tmp_path, "emnist-digits-test", x[:3], np.zeros(3, np.uint8), gz=False)
    got = load_images(str(tmp_path), progress=False)
    assert np.array_equal(got.x[:, 0].numpy(), x.transpose(0, 2, 1))


def test_idx_folder_without_labels_is_unlabelled(tmp_path):
    _write_idx(tmp_path, "train", _rng_images(20, 3, 3), None, gz=False)
    ds = load_images(str(tmp_path), progress=False)
    assert ds.y is None and ds.classes == [] and ds.num_classes == 0 and len(ds.x) == 18


# ---- npz -----------------------------------------------------------------------------------


def test_npz_round_trip_with_labels_and_test_split(tmp_path):
    x, y = _rng_images(20, 6, 6, 3), np.arange(20) % 3
    xt, yt = _rng_images(4, 6, 6, 3, seed=1), np.array([2, 1, 0, 2])
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=xt, y_test=yt, classes=np.array(["a", "b", "c"]))
    train = load_images(str(tmp_path / "d.npz"), progress=False)
    test = load_images(str(tmp_path / "d.npz"), "test", progress=False)
    assert train.x.shape == (20, 3, 6, 6) and train.x.is_contiguous()
    assert np.array_equal(train.x.permute(0, 2, 3, 1).numpy(), x)
    assert np.array_equal(test.x.permute(0, 2, 3, 1).numpy(), xt)
    assert train.y.tolist() == y.tolist() and test.y.tolist() == yt.tolist()
    assert train.classes == ["a", "b", "c"]


def test_npz_without_labels_or_test_split(tmp_path):
    x = _rng_images(10, 5, 5)
    np.savez(tmp_path / "u.npz", x=x)
    train = load_images(str(tmp_path / "u.npz"), progress=False)
    test = load_images(str(tmp_path / "u.npz"), "test", progress=False)
    assert train.y is None and train.classes == []
    assert train.x.shape == (9, 1, 5, 5) and test.x.shape == (1, 1, 5, 5)
    idx = np.random.default_rng(0).permutation(10)
    assert np.array_equal(test.x[:, 0].numpy(), x[idx[9:]])
    assert np.array_equal(train.x[:, 0].numpy(), x[idx[:9]])


def test_npz_rgba_drops_alpha(tmp_path):
    x = _rng_images(4, 3, 3, 4)
    np.savez(tmp_path / "a.npz", x=x, x_test=x)
    ds = load_images(str(tmp_path / "a.npz"), progress=False)
    assert np.array_equal(ds.x.permute(0, 2, 3, 1).numpy(), x[..., :3])


# ---- image folders -------------------------------------------------------------------------


def _class_folder(root: Path, n_per_class: int = 5, size=(10, 8)) -> dict[str, list[np.ndarray]]:
    """PNGs under root/<class>/, each class a different solid colour plus noise."""
    made = {}
    for k, (cls, colour) in enumerate([("cat", (250, 10, 10)), ("ant", (10, 250, 10))]):
        made[cls] = []
        for i in range(n_per_class):
            a = np.full((size[1], size[0], 3), colour, np.uint8)
            a[0, 0] = (k, i, 0)
            _save(root / cls / f"{i:03d}.png", a)
            made[cls].append(a)
    return made


def test_image_folder_with_class_subfolders(tmp_path):
    made = _class_folder(tmp_path, n_per_class=10)
    train = load_images(str(tmp_path), progress=False)
    test = load_images(str(tmp_path), "test", progress=False)
    assert train.classes == ["ant", "cat"]  # sorted names are labels 0, 1
    assert train.x.shape == (18, 3, 8, 10) and test.x.shape == (2, 3, 8, 10)
    for ds in (train, test):
        for img, label in zip(ds.x, ds.y):
            cls = ds.classes[label]
            k, i = img[0, 0, 0].item(), img[1, 0, 0].item()
            assert torch.equal(img.permute(1, 2, 0), torch.from_numpy(made[cls][i]))
            assert k == (1 if cls == "ant" else 0)
    keys = {(img[0, 0, 0].item(), img[1, 0, 0].item()) for img in torch.cat([train.x, test.x])}
    assert len(keys) == 20  # disjoint, and together the whole folder


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    _class_folder(tmp_path / "train", n_per_class=3)
    _class_folder(tmp_path / "test", n_per_class=2)
    train = load_images(str(tmp_path), progress=False)
    test = load_images(str(tmp_path), "test", progress=False)
    assert len(train.x) == 6 and len(test.x) == 4
    assert train.classes == test.classes == ["ant", "cat"]
    assert test.y.tolist() == [0, 0, 1, 1]


def test_flat_folder_is_unlabelled_and_gray_stays_gray(tmp_path):
    for i in range(12):
        _save(tmp_path / f"g{i}.png", np.full((6, 6), i * 20, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_images(str(tmp_path), progress=False)
    assert ds.y is None and ds.classes == [] and ds.x.shape == (11, 1, 6, 6)


def test_mixed_gray_and_rgb_default_to_three_channels(tmp_path):
    _save(tmp_path / "a.png", np.full((4, 4), 77, np.uint8))
    _save(tmp_path / "b.png", _rng_images(1, 4, 4, 3)[0])
    _save(tmp_path / "c.jpg", _rng_images(1, 4, 4, 3, seed=2)[0])
    ds = load_images(str(tmp_path), progress=False)
    assert ds.shape == (3, 4, 4)
    both = torch.cat([ds.x, load_images(str(tmp_path), "test", progress=False).x])
    gray = [img for img in both if bool((img == 77).all())]
    assert len(gray) == 1  # the gray image, repeated to 3 channels


# ---- options -------------------------------------------------------------------------------


def test_resize_crop_and_channels_on_tensors():
    base = load_images("digits", progress=False)
    big = load_images("digits", size=16, progress=False)
    rgb = load_images("digits", channels=3, progress=False)
    assert big.x.shape == (1500, 1, 16, 16) and big.x.dtype == torch.uint8
    assert rgb.x.shape == (1500, 3, 8, 8) and rgb.x.is_contiguous()
    assert all(torch.equal(rgb.x[:, c], base.x[:, 0]) for c in range(3))
    expected = torch.nn.functional.interpolate(
        base.x.float(), size=(16, 16), mode="bilinear", antialias=True
    )
    assert torch.equal(big.x, expected.round().clamp(0, 255).to(torch.uint8))


def test_npz_to_gray_matches_pillow_luma_and_crop_is_centered(tmp_path):
    x = _rng_images(5, 6, 10, 3)
    np.savez(tmp_path / "c.npz", x=x, x_test=x)
    gray = load_images(str(tmp_path / "c.npz"), channels=1, progress=False)
    pil = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in x])
    assert np.array_equal(gray.x[:, 0].numpy(), pil)
    cropped = load_images(str(tmp_path / "c.npz"), crop=True, progress=False)
    assert cropped.shape == (3, 6, 6)
    assert np.array_equal(cropped.x.permute(0, 2, 3, 1).numpy(), x[:, :, 2:8])
    small = load_images(str(tmp_path / "c.npz"), crop=True, size=3, channels=1, progress=False)
    assert small.shape == (1, 3, 3)


def test_files_crop_resize_and_gray(tmp_path):
    src = _rng_images(1, 20, 30, 3)[0]  # H=20, W=30
    for i in range(10):
        _save(tmp_path / f"{i}.png", src)
    ds = load_images(str(tmp_path), crop=True, size=8, channels=1, progress=False)
    assert ds.x.shape == (9, 1, 8, 8)
    want = Image.fromarray(src).convert("L").crop((5, 0, 25, 20)).resize((8, 8), Image.BILINEAR)
    assert np.array_equal(ds.x[0, 0].numpy(), np.asarray(want))


def test_mixed_sizes_need_size_and_crop_makes_them_equal(tmp_path):
    _save(tmp_path / "a.png", _rng_images(1, 10, 12, 3)[0])
    _save(tmp_path / "b.png", _rng_images(1, 10, 14, 3)[0])
    msg = _one_line_error(tmp_path)
    assert "--size N (and optionally --crop)" in msg and "a.png" in msg
    assert load_images(str(tmp_path), size=5, progress=False).shape == (3, 5, 5)
    assert load_images(str(tmp_path), crop=True, progress=False).shape == (3, 10, 10)


def test_a_quick_folder_read_prints_no_progress_bar(tmp_path, capsys):
    """Bars appear only for reads that take over a second: a one-line error stays one line."""
    for i in range(5):
        _save(tmp_path / f"{i}.png", np.zeros((3, 3), np.uint8))
    load_images(str(tmp_path), progress=True)
    assert capsys.readouterr().err == ""


# ---- bad input: one line, DataError --------------------------------------------------------


def test_truncated_and_corrupt_gzip(shared_data, tmp_path):
    data = (shared_data / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes()
    _write_idx(tmp_path, "train", _rng_images(10, 2, 2), None, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _one_line_error(tmp_path)
    labels.write_bytes(data[:20] + bytes(len(data) - 20))  # zeroed deflate stream
    assert "train-labels" in _one_line_error(tmp_path)
    labels.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    _one_line_error(tmp_path)


def test_idx_bad_magic_and_wrong_length(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + bytes(12))
    assert "bad magic" in _one_line_error(tmp_path)
    good = _idx_bytes(_rng_images(4, 3, 3))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(good[:-5])
    assert "truncated" in _one_line_error(tmp_path)


def test_idx_label_count_mismatch(tmp_path):
    _write_idx(tmp_path, "train", _rng_images(10, 2, 2), np.arange(9) % 2, gz=True)
    assert "9 labels for 10 images" in _one_line_error(tmp_path)


def test_empty_folder_and_folder_without_images(tmp_path):
    assert "empty folder" in _one_line_error(tmp_path)
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.csv").write_text("1,2")
    assert "no images found" in _one_line_error(tmp_path)


def test_text_file_and_missing_path(tmp_path, shared_data):
    assert "not an image data set" in _one_line_error(shared_data / "tinyshakespeare/input.txt")
    assert "no such file or folder" in _one_line_error(tmp_path / "nope")
    _save(tmp_path / "one.png", np.zeros((2, 2), np.uint8))
    assert "give the folder" in _one_line_error(tmp_path / "one.png")


def test_corrupt_image_file_is_named(tmp_path):
    for i in range(4):
        _save(tmp_path / f"{i}.png", np.zeros((64, 64), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")
    assert "broken.png" in _one_line_error(tmp_path)
    _save(tmp_path / "big.png", _rng_images(1, 64, 64)[0])
    good = (tmp_path / "big.png").read_bytes()
    (tmp_path / "big.png").unlink()
    (tmp_path / "broken.png").write_bytes(good[: len(good) // 2])  # header fine, pixels cut
    # Only the split holding it decodes its pixels (the other reads headers only).
    messages = []
    for split in ("train", "test"):
        try:
            load_images(str(tmp_path), split, progress=False)
        except DataError as e:
            messages.append(str(e))
    assert len(messages) == 1 and "broken.png" in messages[0] and "\n" not in messages[0]


def test_npz_problems(tmp_path):
    np.savez(tmp_path / "noy.npz", images=_rng_images(3, 2, 2))
    assert "no array named x" in _one_line_error(tmp_path / "noy.npz")
    np.savez(tmp_path / "count.npz", x=_rng_images(5, 2, 2), y=np.arange(4))
    assert "one integer label per image" in _one_line_error(tmp_path / "count.npz")
    np.savez(tmp_path / "float.npz", x=np.zeros((3, 2, 2), np.float32))
    assert "uint8" in _one_line_error(tmp_path / "float.npz")
    (tmp_path / "fake.npz").write_text("just text")
    _one_line_error(tmp_path / "fake.npz")


def test_bad_split_size_and_channels():
    assert "unknown split" in _one_line_error("digits", "val")
    _one_line_error("digits", size=0)
    _one_line_error("digits", channels=2)
