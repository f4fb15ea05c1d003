"""The hardware side's own shape: hls4ml's ``ModelGraph`` read once, then lowered.

* :mod:`.from_hls4ml`: the one reader of hls4ml's objects: ``ModelGraph`` -> :class:`~.layer_graph.LayerGraph`;
* :mod:`.layer_graph`: one plain-data node per hls4ml layer (attributes, weights, fixed-point types),
  what the unrolled generator's per-layer handlers (:mod:`fpga_dnn.rtl.layers`) read;
* :mod:`.graph`: hardware units with integer-level parameters (weights, accumulators, requant, fold);
* :mod:`.lower`: :class:`~.layer_graph.LayerGraph` -> :class:`~.graph.HwGraph` (the streaming generator's input);
* :mod:`.reference`: a numpy integer executor of the graph, the executable spec of the RTL.
"""
