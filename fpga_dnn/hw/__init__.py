"""The hardware side's own shape: a hardware graph lowered from hls4ml's ``ModelGraph``.

* :mod:`.graph`: node types with integer-level parameters (weights, accumulators, requant, fold);
* :mod:`.lower`: hls4ml ``ModelGraph`` -> :class:`~.graph.HwGraph` (the only hls4ml reader here);
* :mod:`.reference`: a numpy integer executor of the graph, the executable spec of the RTL.
"""
