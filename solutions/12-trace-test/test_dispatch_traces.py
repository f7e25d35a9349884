"""Trace tests for the demo's /dispatch: each one guards a property a regression could break.

Each test names the regression it guards with @pytest.mark.guards(...). The
check runs every test against the healthy demo, where it must pass, and
against each regression, where the one that guards it must fail.
"""

import pytest

from tracequest.expect import select


@pytest.mark.guards("double-customer-call")
def test_a_dispatch_makes_at_most_one_customer_query(traces):
    """The customer is read from the database once per /dispatch, never twice."""
    assert traces, "no /dispatch traces to test"
    for trace in traces:
        # exactly, not at most: a selector that matched nothing would pass "at most one".
        select(trace, service="customer", name="SELECT", kind="CLIENT").expect_count(
            exactly=1, hint="read the customer once per dispatch and pass it along")


@pytest.mark.guards("unbounded-route-calls")
def test_route_calls_never_outnumber_the_route_workers(traces, fix_flags):
    """No more route calls run at once than the frontend's route worker pool has workers."""
    workers = fix_flags["fix-route-worker-pool-size"]
    # The frontend's calls to route: the CLIENT spans whose children are route's SERVER spans.
    calls = select(traces, service="route", kind="SERVER").parent(service="frontend", kind="CLIENT")
    calls.expect_concurrency(at_most=workers,
                             hint=f"route calls must go through the pool of {workers} workers")


@pytest.mark.guards("error-without-exception")
def test_every_driver_error_records_its_exception(traces):
    """A driver span that ends in error says why: it carries an 'exception' event."""
    errors = select(traces, service="driver", status="ERROR")
    errors.expect_event("exception",
                        hint="call span.record_exception(error) before setting the error status")
