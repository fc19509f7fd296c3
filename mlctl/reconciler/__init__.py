"""The reconciler: graph, diff, plan (pure), render, plan files; refresh and apply carry out effects."""
