"""The echo canceller on real synthesised speech through a simulated room."""

import shutil

import numpy as np
import pytest

from voice_skill.aec import EchoCanceller, simulated_room

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                                reason="espeak-ng and flite make the test speech")


@pytest.fixture(scope="module")
def speech():
    from voice_skill.devtools.speechgen import synthesize

    skill = synthesize("Now slow, light strokes from ankle up toward the knee. Keep the pressure gentle.",
                       "espeak:en-us").astype(float)
    user = synthesize("pause", "flite:slt").astype(float)
    return np.concatenate([skill] * 3), user


def run(aec, mic, ref):
    return np.concatenate([aec.process(mic[i:i + 160], ref[i:i + 160]) for i in range(0, len(mic) - 159, 160)])


def db(a, b):
    return 10 * np.log10(float(a @ a) / (float(b @ b) + 1e-9))


def test_the_echo_is_removed_once_the_filter_has_learned_the_room(speech):
    ref, _ = speech
    echo = np.convolve(ref, simulated_room())[: len(ref)] * 0.7
    out = run(EchoCanceller(), echo, ref)
    last = slice(2 * len(out) // 3, len(out))
    assert db(echo[last], out[last]) > 30  # echo return loss enhancement after convergence


def test_the_users_voice_survives_double_talk(speech):
    ref, user = speech
    echo = np.convolve(ref, simulated_room())[: len(ref)] * 0.7
    at = 2 * len(ref) // 3  # the filter has converged by then
    mic = echo.copy()
    mic[at:at + len(user)] += user
    aec = EchoCanceller()
    out = run(aec, mic, ref)
    window = slice(at, at + len(user))
    assert db(user[: len(out[window])], (out[window] - user[: len(out[window])])) > 15
    assert aec.double_talk_blocks > 0


def test_silence_from_the_loudspeaker_passes_the_microphone_untouched():
    rng = np.random.default_rng(1)
    mic = rng.standard_normal(1600) * 1000
    out = run(EchoCanceller(), mic, np.zeros(1600))
    assert np.array_equal(out, mic)


def test_blocks_must_have_the_configured_size():
    with pytest.raises(ValueError):
        EchoCanceller().process(np.zeros(100), None)
