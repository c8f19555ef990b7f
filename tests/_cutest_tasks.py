"""Tasks for the CUTEst harness's pool test (run in worker processes)."""

import os


def python_loop(report):
    report({"stage": "looping"}, restart_clock=True)
    while True:
        pass


def stuck_in_c(report):
    report({"stage": "waiting"}, restart_clock=True)
    os.system("sleep 30")  # C's system() retries when interrupted: the alarm waits


def dies(report):
    os._exit(3)


def fine(report, value):
    return 2 * value
