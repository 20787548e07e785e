"""Quality benchmark: distillguard against baselines on labelled simulated traffic."""
