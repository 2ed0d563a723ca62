# broker/models/: the model table, its lifecycle (load, unload, reload)
# and the SIGHUP rescan; compiled into ferryd.
FERRYD_MODELS_SOURCES = \
	broker/models/models.c broker/models/models.h \
	broker/models/rescan.c broker/models/rescan.h \
	broker/models/snapshot.c broker/models/snapshot.h
