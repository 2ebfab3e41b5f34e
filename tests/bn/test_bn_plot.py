"""draw_network: one label per node, one arrow per edge, roots above their children, highlighted nodes coloured."""

import networkx as nx
import numpy as np
import pytest

from probmodels import ModelSpecError
from probmodels.bn import LinearGaussianBayesianNetwork
from probmodels.bn.plot import HIGHLIGHT_COLOR, NODE_COLOR, draw_network, layered_layout
from probmodels.datasets import asia

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")
FancyArrowPatch = pytest.importorskip("matplotlib.patches").FancyArrowPatch
to_rgba = matplotlib.colors.to_rgba


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def drawn(ax):
    labels = {t.get_text(): t.get_position() for t in ax.texts}
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    return labels, arrows


def test_draws_asia_layered_with_highlighted_evidence():
    net = asia()
    ax = draw_network(net, highlight=["xray", "dysp"])
    labels, arrows = drawn(ax)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert len(ax.texts) == len(net.nodes) and set(labels) == set(net.nodes)
    assert len(arrows) == len(net.edges)
    for parent, child in net.edges:  # top-down: every parent on a higher row than its children
        assert labels[parent][1] > labels[child][1]
    (nodes,) = ax.collections[:1]
    faces = nodes.get_facecolors()
    for node, face in zip(net.graph.nodes, faces):
        expected = HIGHLIGHT_COLOR if node in ("xray", "dysp") else NODE_COLOR
        np.testing.assert_allclose(face, to_rgba(expected))


def test_gaussian_network_edge_list_and_given_axes():
    gaussian = LinearGaussianBayesianNetwork(
        cpds={"a": ((), 0.0, [], 1.0), "b": (("a",), 1.0, [2.0], 1.0), "c": (("a", "b"), 0.0, [1.0, -1.0], 0.5)}
    )
    _, ax = plt.subplots()
    assert draw_network(gaussian, ax) is ax
    labels, arrows = drawn(ax)
    assert set(labels) == {"a", "b", "c"} and len(arrows) == 3
    ax = draw_network([("x", "y"), ("x", "z"), ("w", "z")], layout={"x": (0, 1), "w": (1, 1), "y": (0, 0), "z": (1, 0)})
    labels, arrows = drawn(ax)
    assert labels["w"] == (1, 1) and len(arrows) == 3


def test_layered_layout_rows_and_spacing():
    positions = layered_layout(nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("a", "d")]))
    assert positions == {"a": (-0.5, 0.0), "b": (0.5, 0.0), "c": (0.0, -1.0), "d": (0.0, -2.0)}


def test_draw_network_bad_input():
    with pytest.raises(ModelSpecError, match=r"highlight names \['nope'\]"):
        draw_network([("a", "b")], highlight=["nope"])
    with pytest.raises(ModelSpecError, match="layout must be 'layered'"):
        draw_network([("a", "b")], layout="spring")
    with pytest.raises(ModelSpecError, match=r"no position for the nodes \['b'\]"):
        draw_network([("a", "b")], layout={"a": (0, 0)})
    with pytest.raises(ModelSpecError, match="cycle"):
        draw_network([("a", "b"), ("b", "a")])
