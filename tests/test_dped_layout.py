import zipfile

import pytest

from gan.data.dped import DpedSource, LayoutError, find_layout


def names(root, phone="iphone", n=3):
    out = []
    for i in range(n):
        out += [f"{root}training_data/{phone}/{i}.jpg", f"{root}training_data/canon/{i}.jpg",
                f"{root}test_data/patches/{phone}/{i}.jpg", f"{root}test_data/patches/canon/{i}.jpg"]
    return out + [f"{root}test_data/full_size_test_images/10.jpg",
                  f"{root}test_data/full_size_test_images/9.jpg"]


@pytest.mark.parametrize("root", ["dped/iphone/", "", "DPED copy/iphone/", "a/b/c/"])
def test_layout_found_under_any_root(root):
    layout = find_layout(names(root), "iphone")
    assert layout.root == root
    assert [p.index for p in layout.pairs["train"]] == [0, 1, 2]
    assert layout.pairs["test"][1].phone == f"{root}test_data/patches/iphone/1.jpg"
    assert layout.pairs["test"][1].dslr == f"{root}test_data/patches/canon/1.jpg"
    # natural order: 9 before 10
    assert [n.rsplit("/", 1)[1] for n in layout.full_size] == ["9.jpg", "10.jpg"]


def test_the_requested_phone_is_picked_from_a_full_release():
    all_phones = names("dped/iphone/") + names("dped/sony/", "sony", 5)
    all_phones += [f"__MACOSX/dped/iphone/training_data/iphone/._{i}.jpg" for i in range(3)]
    sony = find_layout(all_phones, "sony")
    assert sony.root == "dped/sony/" and len(sony.pairs["train"]) == 5
    iphone = find_layout(all_phones, "iphone")
    assert iphone.root == "dped/iphone/" and len(iphone.pairs["train"]) == 3


def test_one_sided_indices_become_pairs_with_a_missing_side():
    listing = names("dped/iphone/") + ["dped/iphone/training_data/iphone/7.jpg",
                                       "dped/iphone/training_data/canon/8.jpg"]
    pairs = {p.index: p for p in find_layout(listing, "iphone").pairs["train"]}
    assert pairs[7].dslr is None and pairs[7].phone
    assert pairs[8].phone is None and pairs[8].dslr


def test_missing_phone_names_what_was_found():
    with pytest.raises(LayoutError, match=r"phone 'blackberry'.*found: iphone"):
        find_layout(names("dped/iphone/"), "blackberry")
    with pytest.raises(LayoutError, match="unknown phone"):
        find_layout(names(""), "nokia")


def test_two_copies_of_one_phone_are_ambiguous():
    with pytest.raises(LayoutError, match="several DPED trees"):
        find_layout(names("a/") + names("b/"), "iphone")


def test_source_reads_zip_and_folder_alike(tmp_path):
    folder = tmp_path / "tree"
    (folder / "x" / "y").mkdir(parents=True)
    (folder / "x" / "y" / "f.bin").write_bytes(b"payload")
    (folder / "top.txt").write_bytes(b"top")
    zipped = tmp_path / "t.zip"
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        with zipfile.ZipFile(zipped, "w", compression=compression) as zf:
            zf.writestr("top.txt", b"top")
            zf.writestr("x/y/f.bin", b"payload" * 1000)
        with DpedSource(zipped) as source:
            assert sorted(source.names()) == ["top.txt", "x/y/f.bin"]
            assert source.read("x/y/f.bin") == b"payload" * 1000
    with DpedSource(folder) as source:
        assert source.names() == ["top.txt", "x/y/f.bin"]
        assert source.read("x/y/f.bin") == b"payload"


def test_damaged_zip_member_is_an_error_not_garbage(tmp_path):
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", b"A" * 500)
    blob = bytearray(path.read_bytes())
    blob[blob.index(b"A" * 500) + 100] = ord("B")  # flip one payload byte
    path.write_bytes(bytes(blob))
    with DpedSource(path) as source, pytest.raises(ValueError, match="CRC mismatch"):
        source.read("a.bin")


def test_not_a_zip_is_a_clear_error(tmp_path):
    bogus = tmp_path / "x.zip"
    bogus.write_text("hello")
    with pytest.raises(LayoutError, match="not a zip archive"):
        DpedSource(bogus)
    with pytest.raises(FileNotFoundError):
        DpedSource(tmp_path / "absent.zip")


def test_an_undecodable_patch_is_explained_without_an_anonymous_buffer():
    from gan.data.dped import decode_patch

    with pytest.raises(ValueError) as caught:
        decode_patch(b"this is not an image")
    assert "BytesIO" not in str(caught.value) and "not a JPEG" in str(caught.value)
