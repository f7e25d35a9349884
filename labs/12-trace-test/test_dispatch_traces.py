"""Trace tests for the demo's /dispatch: each one guards a property a regression could break.

Each test names the regression it guards with @pytest.mark.guards(...). The
check runs every test against the healthy demo, where it must pass, and
against each regression, where the one that guards it must fail.
"""

import pytest

from tracequest.expect import select  # noqa: F401  (you will need it)


@pytest.mark.guards("double-customer-call")
def test_a_dispatch_makes_at_most_one_customer_query(traces):
    """The customer is read from the database once per /dispatch, never twice."""
    # TODO: for each trace, select the customer service's SELECT spans and expect
    #       there to be one. Look at a trace first (`tracequest show`) to get the names right.


@pytest.mark.guards("unbounded-route-calls")
def test_route_calls_never_outnumber_the_route_workers(traces, fix_flags):
    """No more route calls run at once than the frontend's route worker pool has workers."""
    # TODO: select the frontend's calls to the route service (the parents of the route
    #       service's SERVER spans) and expect at most as many of them at once as the pool
    #       has workers. The pool's size is a fix flag: read it from fix_flags.


@pytest.mark.guards("error-without-exception")
def test_every_driver_error_records_its_exception(traces):
    """A driver span that ends in error says why: it carries an 'exception' event."""
    # TODO: select the driver service's spans whose status is ERROR, and expect each
    #       to have an 'exception' event.
