"""The training engine: the settings of a run (``train_config``), the loop that trains it and reports
through events (``train``), its command line generated from the dataclasses (``cli``), background jobs
in processes of their own (``jobs``), one evaluation with typed reports (``evaluate``, ``metrics``),
saved runs and what they keep (``runs``, ``run_extras``) and runs side by side (``compare``).
"""
