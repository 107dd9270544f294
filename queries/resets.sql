-- about: Who reset whom, in which state: resets sent and received (ephemeral ports shown as *)
-- limit: 50

-- title: Resets by direction, state and endpoints
WITH p AS (
    -- One pass over the events, numbers first: per endpoint pair, state and process,
    -- ephemeral ports as NULL (shown as *), and text only for these groups, not every row.
    SELECT {host}direction,
           service,
           laddr, CASE WHEN lport >= 32768 THEN NULL ELSE lport END AS lp,
           raddr, CASE WHEN rport >= 32768 THEN NULL ELSE rport END AS rp,
           coalesce(state, '(no socket)') AS state,
           coalesce(reason, '') AS reason,
           comm,
           count(*) AS resets, min(time) AS first, max(time) AS last
    FROM resets
    GROUP BY ALL
), g AS (
    -- An endpoint is one (address, port) (the text splits at its last ':'), so each
    -- process is one row of p here and needs no DISTINCT. Sorted: answers must not vary.
    SELECT {host}direction,
           service,
           laddr || ':' || coalesce(CAST(lp AS VARCHAR), '*') AS local,
           raddr || ':' || coalesce(CAST(rp AS VARCHAR), '*') AS remote,
           state,
           reason,
           sum(resets) AS resets,
           array_to_string(array_sort(array_agg(comm)), ', ') AS processes,
           min(first) AS first,
           max(last) AS last
    FROM p
    GROUP BY ALL
)
SELECT {host}direction, service, local, remote, state, reason, resets, processes, first, last
FROM g
ORDER BY resets DESC, {host}direction, service, local, remote, state, reason
LIMIT {limit};
