"""When tracing breaks: the usual Python pitfalls, reproduced for real, and a doctor.

``scenarios`` runs one small program per pitfall (in ``programs/``) against a
trace backend, broken and fixed, so a learner sees the very trace each mistake
leaves. ``doctor`` looks at a learner's own setup (environment, packages,
ports, a round trip, a collector config, a command) and names each problem
with its fix.
"""
