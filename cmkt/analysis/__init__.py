"""Analysis: scoring a model over students (trajectories of predictions, mastery and gains), the
one definition of every metric, explanations of a prediction's parts, and the counting models."""
