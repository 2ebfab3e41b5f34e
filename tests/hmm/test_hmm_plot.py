"""probmodels.hmm.plot_states: the two panels, their contents and labels, and a PNG."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from probmodels import ModelSpecError  # noqa: E402
from probmodels.hmm import GaussianHMM, plot_states  # noqa: E402


def fitted_model():
    hmm = GaussianHMM(3)
    hmm.startprob_ = np.array([0.6, 0.3, 0.1])
    hmm.transmat_ = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    hmm.means_ = np.array([[0.0], [3.0], [6.0]])
    hmm.covars_ = np.array([[0.5], [0.5], [0.5]])
    return hmm


def test_two_panels_with_states_bands_and_labels(tmp_path):
    hmm = fitted_model()
    X, states = hmm.sample(120, seed=1)
    figure = plot_states(hmm, X, [70, 50], title="three states")
    assert isinstance(figure, Figure)
    top, bottom = figure.axes[:2]
    # top: the observed line, one bar collection per decoded state, a legend naming every state
    assert len(top.lines) == 1 + 1  # observations + one sequence boundary
    np.testing.assert_array_equal(top.lines[0].get_ydata(), X[:, 0])
    decoded = set(hmm.predict(X, [70, 50]).tolist())
    bars = [c for c in top.collections if c.get_label().startswith("state")]
    assert sorted(c.get_label() for c in bars) == [f"state {s}" for s in sorted(decoded)]
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["state 0", "state 1", "state 2"]
    assert top.get_ylabel() == "x[0]" and top.get_title() == "three states"
    # bottom: one probability band per state, stacked to 1
    bands = [c for c in bottom.collections if isinstance(c, PolyCollection)]
    assert [b.get_label() for b in bands] == ["state 0", "state 1", "state 2"]
    assert bottom.get_ylim() == (0.0, 1.0)
    assert bottom.get_ylabel() == "p(state | X)" and bottom.get_xlabel() == "time step"
    assert len(bottom.lines) == 1  # the sequence boundary
    path = tmp_path / "states.png"
    figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draws_on_given_axes_and_through_the_model_method():
    hmm = fitted_model()
    X, _ = hmm.sample(40, seed=2)
    figure = Figure()
    axes = figure.subplots(2, 1)
    assert hmm.plot_states(X, ax=axes) is figure
    assert len(axes[0].lines) == 1 and len(axes[1].collections) == 3


def test_bad_arguments_raise_clear_errors():
    hmm = fitted_model()
    X, _ = hmm.sample(20, seed=3)
    with pytest.raises(ModelSpecError, match="feature"):
        plot_states(hmm, X, feature=2)
    with pytest.raises(ModelSpecError, match="two matplotlib Axes"):
        plot_states(hmm, X, ax=[Figure().subplots()])
    with pytest.raises(ModelSpecError, match="not fitted"):
        plot_states(GaussianHMM(2), X)
