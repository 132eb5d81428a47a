import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dia_core.errors import InputError
from dia_core.dia.tokenizer import encode_batch, encode_text


def test_bytes_and_speaker_tags():
    assert encode_text("[S1] Hi [S2] yo") == [1, 32, 72, 105, 32, 2, 32, 121, 111]
    assert encode_text("[S1] é") == [1, 32, 0xC3, 0xA9]  # UTF-8, one token per byte


@pytest.mark.parametrize("tag", ["[S3]", "[s1]", "[ S1 ]", "[S0]", "[Speaker1]", "[S12]"])
def test_unknown_speaker_tag_is_an_error(tag):
    with pytest.raises(InputError) as e:
        encode_text(f"[S1] hello {tag} there")
    assert tag in str(e.value) and "[S1] and [S2]" in str(e.value)


def test_other_brackets_are_text():
    assert encode_text("[S1] (laughs) [music]") == list(b"\x01 (laughs) [music]")


@pytest.mark.parametrize("text", ["", "   ", "[S1]", "[S1] [S2]  "])
def test_empty_text_is_an_error(text):
    with pytest.raises(InputError, match="empty"):
        encode_text(text)


def test_reserved_control_bytes_are_an_error():
    with pytest.raises(InputError, match="control character"):
        encode_text("[S1] a\x00b")


def test_length_limit_counts_bytes_and_says_so():
    assert len(encode_text("[S1]" + "a" * 1023)) == 1024  # the tag is one byte
    with pytest.raises(InputError) as e:
        encode_text("[S1]" + "a" * 1024, field="item 3: text")
    msg = str(e.value)
    assert "1025 bytes" in msg and "1024" in msg and msg.startswith("item 3: text:")
    with pytest.raises(InputError, match="1026 bytes"):
        encode_text("é" * 513)  # 513 characters, 1026 bytes


def test_encode_batch_right_pads_with_zero():
    batch = encode_batch([[1, 5, 6], [2]])
    assert batch.tolist() == [[1, 5, 6], [2, 0, 0]]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="[]\x00\x01\x02", blacklist_categories=("Cs",)),
               min_size=1, max_size=200).filter(lambda s: s.strip()))
def test_plain_text_is_its_utf8_bytes(text):
    assert encode_text(text) == list(text.encode("utf-8"))
