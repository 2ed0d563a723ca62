# broker/: ferryd.  One folder per part, each with its own fragment; the
# arrows run frontends -> models/sched -> backends -> gpu, and core wires
# them together (docs/DESIGN.md, "Growing the house").
include broker/gpu/gpu.mk
include broker/config/config.mk
include broker/sched/sched.mk
include broker/backends/backends.mk
include broker/models/models.mk
include broker/frontends/frontends.mk
include broker/core/core.mk
