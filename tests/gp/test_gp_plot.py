"""plot_predictive: the drawn bands are the model's own credible bands, nested as they must be, with clear errors."""

import matplotlib
import numpy as np
import pytest
import torch

from probmodels import ModelSpecError, NotFittedError, ShapeError
from probmodels.gp import GPRegression, SparseGPRegression, plot_predictive

matplotlib.use("Agg")

X = torch.linspace(0.0, 4.0, 30, dtype=torch.float64).unsqueeze(-1)
Y = torch.sin(2.0 * X[:, 0]) + 0.2 * torch.randn(30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.fixture(scope="module")
def gp():
    return GPRegression().fit(X, Y)


def band_vertices(collection) -> np.ndarray:
    """The (x, y) vertices of a fill_between polygon."""
    return collection.get_paths()[0].vertices


def test_bands_are_the_models_intervals_and_nested(gp):
    figure = plot_predictive(gp, X, Y, prob=0.9)
    ax = figure.axes[0]
    observation, function = ax.collections[:2]
    grid = torch.linspace(-0.2, 4.2, 200, dtype=torch.float64).unsqueeze(-1)
    lower, upper = gp.predict_interval(grid, prob=0.9)
    vertices = band_vertices(function)
    assert np.allclose(np.sort(vertices[:, 1]).min(), float(lower.min()))
    assert np.allclose(np.sort(vertices[:, 1]).max(), float(upper.max()))
    # the observation band contains the function band, which contains the mean
    assert band_vertices(observation)[:, 1].min() < vertices[:, 1].min()
    mean_line = ax.lines[0].get_ydata()
    assert np.allclose(mean_line, gp.predict(grid).numpy())
    assert np.all((mean_line >= lower.numpy() - 1e-12) & (mean_line <= upper.numpy() + 1e-12))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "90% band, new observation", "90% band, function", "predictive mean", "data"
    ]


def test_sparse_model_marks_its_inducing_points():
    sparse = SparseGPRegression(num_inducing=8, max_epochs=5, seed=0).fit(X, Y)
    ax = plot_predictive(sparse, X, Y).axes[0]
    marks = [line for line in ax.lines if line.get_label() == "inducing points"]
    assert len(marks) == 1 and np.allclose(np.sort(marks[0].get_xdata()), np.sort(sparse.inducing_points_[:, 0].numpy()))


def test_several_features_need_a_grid():
    g = torch.Generator().manual_seed(1)
    X2 = torch.randn(20, 2, generator=g, dtype=torch.float64)
    y2 = torch.sin(X2.sum(-1)) + 0.1 * torch.randn(20, generator=g, dtype=torch.float64)
    model = GPRegression().fit(X2, y2)
    with pytest.raises(ModelSpecError, match="pass grid="):
        plot_predictive(model, X2, y2)
    grid = torch.zeros(50, 2, dtype=torch.float64)
    grid[:, 1] = torch.linspace(-2, 2, 50)
    assert plot_predictive(model, X2, y2, grid, feature=1).axes[0].get_xlabel() == "x[1]"
    with pytest.raises(ShapeError, match="grid has 1 feature"):
        plot_predictive(model, X2, y2, grid[:, :1])


def test_bad_input_is_named(gp):
    with pytest.raises(ModelSpecError, match="prob must lie in"):
        plot_predictive(gp, X, Y, prob=1.5)
    with pytest.raises(ShapeError, match="X has 30 rows but y has 29"):
        plot_predictive(gp, X, Y[:-1])
    with pytest.raises(ModelSpecError, match="feature must be a column"):
        plot_predictive(gp, X, Y, feature=3)
    with pytest.raises(NotFittedError, match="not fitted"):
        plot_predictive(GPRegression(), X, Y)
