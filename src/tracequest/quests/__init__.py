"""Quests: the lab's exercises, their checks, and the learner's progress.

- ``registry``  the quests (id, title, level, XP) and the badges;
- ``harness``   runs the learner's code against an in-test backend (with ``relay``
                and ``launcher``) and returns its traces;
- ``failure``   the mentor-style verdict a check raises; ``describe`` words for it;
- ``plugin``    the pytest plugin the checks run under (``checks/pytest.ini``);
- ``results``, ``progress``, ``board``  what a run found, what the learner has
                earned, and how both are shown;
- ``runner``, ``commands``  ``tracequest check``, ``quests``, ``hint``, ``mystery``
                and ``answer``;
- ``collector_run``, ``collector_config``  run a learner's collector config in the
                real collector (06b, 07; 09 in the fan-out lab) and read its shape;
- ``mystery``, ``mystery_run``, ``slow_span``  quest 03: the drawn culprit, the
                hermetic run, and the verdict on the learner's answer.

Nothing is imported here, so the CLI stays quick to start.
"""
