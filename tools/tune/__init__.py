# SPDX-License-Identifier: MIT
"""ferry-tune's modules (tools/ferry-tune.in is the program): tune_main (the
command line and the run), tune_space (the space and a candidate's
config), tune_search (quick and exhaustive search), tune_measure (the load
generators and scores), tune_broker (the running ferryd), tune_report
(CSV, plots, HTML) and tune_pbtxt (config.pbtxt as a tree)."""
