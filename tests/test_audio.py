"""The one replay path: WAVs of any common format become the same 16 kHz mono chunks."""

import struct
import warnings

import numpy as np
import pytest

from voice_skill.audio.framing import Framer, rechunk
from voice_skill.audio.pcm import AudioChunk, iter_wav_chunks, read_wav, write_wav
from voice_skill.errors import InputFileError


def tone(rate, seconds=1.0, freq=440.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def wav_bytes(samples: np.ndarray, rate: int, bits: int = 16, channels: int = 1, is_float=False,
              extensible=False, declared=None) -> bytes:
    x = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    if is_float:
        data = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        data = (np.clip(x, -1, 1) * 127 + 128).astype(np.uint8).tobytes()
    elif bits == 16:
        data = (x * 32767).astype("<i2").tobytes()
    elif bits == 24:
        v = (x * 8388607).astype("<i4")
        data = b"".join(int(s).to_bytes(4, "little", signed=True)[:3] for s in v)
    else:
        data = (x * 2147483647).astype("<i4").tobytes()
    tag = 3 if is_float else 1
    align = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI16s", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0,
                          struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + body


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return np.argmax(spectrum) * 16000 / len(samples)


@pytest.mark.parametrize("rate,bits,channels,is_float,extensible", [
    (16000, 16, 1, False, False),
    (8000, 8, 1, False, False),
    (22050, 16, 2, False, False),
    (44100, 24, 2, False, False),
    (48000, 32, 1, False, False),
    (48000, 32, 2, True, False),
    (96000, 64, 1, True, False),
    (44100, 16, 6, False, True),
])
def test_common_formats_are_converted_not_refused(tmp_path, rate, bits, channels, is_float, extensible):
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(tone(rate), rate, bits, channels, is_float, extensible))
    out = read_wav(path)
    assert len(out) == pytest.approx(16000, abs=1)
    assert dominant_hz(out) == pytest.approx(440, abs=2)
    assert np.abs(out).max() == pytest.approx(0.5 * 32768, rel=0.05)


def test_chunks_are_stamped_in_audio_time(tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, (tone(16000, 1.05) * 32767).astype(np.int16))
    chunks = list(iter_wav_chunks(path, chunk_s=0.1))
    assert [round(c.start_s, 3) for c in chunks] == [round(0.1 * i, 3) for i in range(11)]
    assert chunks[-1].seconds == pytest.approx(0.05)
    assert all(isinstance(c, AudioChunk) and c.rate == 16000 for c in chunks)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_chunk_size_does_not_change_the_samples(tmp_path, rate):
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(tone(rate, 2.0) * 0.9, rate))
    a = np.concatenate([c.as_array() for c in iter_wav_chunks(path, 0.02)])
    b = np.concatenate([c.as_array() for c in iter_wav_chunks(path, 0.1)])
    assert np.array_equal(a, b)


def test_rechunk_keeps_samples_and_times():
    chunks = [AudioChunk(bytes(range(200)) * 2, 0.0), AudioChunk(bytes(300) * 2, 400 / 2 / 16000)]
    out = list(rechunk(iter(chunks), 160))
    assert b"".join(c.audio for c in out) == b"".join(c.audio for c in chunks)
    assert [c.start_s for c in out] == [i * 0.01 for i in range(len(out))]


@pytest.mark.parametrize("piece", [1, 7, 160, 333])
def test_framer_gives_the_same_frames_whatever_the_chunking(piece):
    audio = np.arange(1000, dtype="<i2").tobytes()
    framer = Framer(160)
    frames = []
    for at in range(0, len(audio), piece * 2):
        frames += framer.cut(audio[at:at + piece * 2])
        assert framer.samples_in == min(at // 2 + piece, 1000)
    assert frames == [audio[i:i + 320] for i in range(0, 960 * 2, 320)]
    assert framer.pending == audio[960 * 2:] and framer.samples_out == 960
    assert framer.take_rest(pad=True) == audio[960 * 2:] + bytes(320 - 80)
    assert framer.pending == b"" and framer.take_rest() == b""


@pytest.mark.parametrize("content,problem", [
    (b"", "empty"),
    (b"hello, this is not audio at all", "not a WAV file"),
    (b"RIFF\x10\x00\x00\x00WAVE", "no 'fmt ' chunk"),
])
def test_bad_files_are_named_with_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as err:
        list(iter_wav_chunks(path))
    assert problem in str(err.value) and str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        list(iter_wav_chunks(tmp_path / "nope.wav"))


def test_truncated_file_is_refused_before_any_chunk(tmp_path):
    good = wav_bytes(tone(16000), 16000)
    path = tmp_path / "cut.wav"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputFileError, match="truncated"):
        next(iter_wav_chunks(path))


def test_absurd_declared_length_is_refused(tmp_path):
    path = tmp_path / "huge.wav"
    path.write_bytes(wav_bytes(tone(16000, 0.1), 16000, declared=0xFFFFFFF0))
    with pytest.raises(InputFileError):
        next(iter_wav_chunks(path))


def test_streaming_writer_placeholder_length_is_accepted(tmp_path):
    path = tmp_path / "stream.wav"
    path.write_bytes(wav_bytes(tone(16000, 0.5), 16000, declared=0xFFFFFFFF))
    assert len(read_wav(path)) == 8000


def test_nan_floats_are_refused(tmp_path):
    x = tone(16000, 0.2)
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    path.write_bytes(wav_bytes(x, 16000, bits=32, is_float=True))
    with pytest.raises(InputFileError, match="NaN"):
        list(iter_wav_chunks(path))


def test_float64_samples_past_float32s_range_read_as_full_scale_without_a_warning(tmp_path):
    """A 64-bit float sample far beyond full scale (1e300) is clipped like any loud sample; cast to
    float32 first, it would have become infinite (numpy's overflow warning, found by the fuzz test)."""
    x = tone(16000, 0.2)
    x[100], x[101] = 1e300, -1e300
    path = tmp_path / "loud.wav"
    path.write_bytes(wav_bytes(x, 16000, bits=64, is_float=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = read_wav(path)
    assert got[100] == 32767 and got[101] == -32768 and len(got) == len(x)


def test_unsupported_encoding_is_named(tmp_path):
    data = bytearray(wav_bytes(tone(8000, 0.1), 8000, bits=8))
    data[20:22] = struct.pack("<H", 6)  # A-law
    path = tmp_path / "alaw.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="unsupported WAV encoding"):
        list(iter_wav_chunks(path))


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 44101])
def test_the_resampler_gives_the_same_samples_in_any_blocks_and_from_its_table(rate):
    from voice_skill.audio.pcm import Resampler

    x = (np.random.default_rng(rate).standard_normal(rate) * 0.3).astype(np.float32)

    def resample(block: int, table: bool = True) -> np.ndarray:
        r = Resampler(rate)
        if not table:
            r._table = None  # every kernel computed from the sample's own position
        parts = [r.process(x[i:i + block]) for i in range(0, len(x), block)]
        return np.concatenate(parts + [r.process(np.zeros(0, np.float32), final=True)])

    whole = resample(len(x))
    assert len(whole) == round(len(x) * 16000 / rate)
    assert np.array_equal(resample(777), whole)
    assert np.abs(resample(1000, table=False) - whole).max() < 1e-5
