-- about: Failed and slow connection attempts by destination and cause, and SYN-ACK retransmits on our listeners

-- title: Failed connection attempts (we connected) by destination and cause
SELECT {host}service,
       raddr || ':' || CAST(rport AS VARCHAR) AS destination,
       handshake AS cause,
       count(*) AS attempts,
       sum(syn_retransmits) AS syn_retransmits,
       round(avg(handshake_ns) / 1e6, 3) AS avg_wait_ms,
       round(max(handshake_ns) / 1e6, 3) AS max_wait_ms,
       -- Sorted: array_agg(DISTINCT) has no order of its own, and answers must not vary.
       array_to_string(array_sort(array_agg(DISTINCT comm)), ', ') AS processes
FROM flows
WHERE role = 'client' AND handshake IS NOT NULL AND handshake <> 'completed'
GROUP BY ALL
ORDER BY attempts DESC, {host}service, destination, cause;

-- title: Slow handshakes: completed only after SYN retransmits
SELECT {host}service,
       raddr || ':' || CAST(rport AS VARCHAR) AS destination,
       count(*) AS connections,
       sum(syn_retransmits) AS syn_retransmits,
       round(avg(handshake_ns) / 1e6, 3) AS avg_wait_ms,
       round(max(handshake_ns) / 1e6, 3) AS max_wait_ms
FROM flows
WHERE role = 'client' AND handshake = 'completed' AND syn_retransmits > 0
GROUP BY ALL
ORDER BY connections DESC, {host}service, destination;

-- title: Connections to our listeners that failed in the handshake (reset or timed out in SYN_RECV)
SELECT {host}service,
       laddr || ':' || CAST(lport AS VARCHAR) AS listener,
       raddr AS client,
       handshake AS cause,
       count(*) AS connections
FROM flows
WHERE role = 'server' AND handshake IS NOT NULL AND handshake <> 'completed'
GROUP BY ALL
ORDER BY connections DESC, {host}service, listener, client, cause;

-- title: SYN-ACK retransmits on our listeners (clients that did not get our answer)
SELECT {host}service,
       laddr || ':' || CAST(lport AS VARCHAR) AS listener,
       count(*) AS synack_retransmits,
       count(DISTINCT raddr) AS clients,
       array_to_string(array_sort(array_agg(DISTINCT comm)), ', ') AS listener_processes
FROM retransmits
WHERE kind = 'synack'
GROUP BY ALL
ORDER BY synack_retransmits DESC, {host}service, listener;
