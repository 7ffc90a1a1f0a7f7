"""A PipelineTask that does nothing, one quantum per visit x detector: what executing a quantum costs."""

from __future__ import annotations

import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct


class NoopConnections(pipe_base.PipelineTaskConnections, dimensions=("instrument", "visit", "detector")):
    marker = ct.Output(
        doc="A one-row table, so that the quantum writes one dataset as a real one does.",
        name="noop_marker",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )


class NoopConfig(pipe_base.PipelineTaskConfig, pipelineConnections=NoopConnections):
    pass


class NoopTask(pipe_base.PipelineTask):
    ConfigClass = NoopConfig
    _DefaultName = "noop"

    def run(self) -> pipe_base.Struct:
        from astropy.table import Table

        return pipe_base.Struct(marker=Table({"ok": [1]}))
