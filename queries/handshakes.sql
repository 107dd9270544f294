-- about: Failed and slow connection attempts by destination and cause, and SYN-ACK retransmits on our listeners

-- title: Failed connection attempts (we connected) by destination and cause
SELECT service,
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
GROUP BY 1, 2, 3
ORDER BY attempts DESC, 1, 2, 3;

-- title: Slow handshakes: completed only after SYN retransmits
SELECT service,
       raddr || ':' || CAST(rport AS VARCHAR) AS destination,
       count(*) AS connections,
       sum(syn_retransmits) AS syn_retransmits,
       round(avg(handshake_ns) / 1e6, 3) AS avg_wait_ms,
       round(max(handshake_ns) / 1e6, 3) AS max_wait_ms
FROM flows
WHERE role = 'client' AND handshake = 'completed' AND syn_retransmits > 0
GROUP BY 1, 2
ORDER BY connections DESC, 1, 2;

-- title: Connections to our listeners that failed in the handshake (reset or timed out in SYN_RECV)
SELECT service,
       laddr || ':' || CAST(lport AS VARCHAR) AS listener,
       raddr AS client,
       handshake AS cause,
       count(*) AS connections
FROM flows
WHERE role = 'server' AND handshake IS NOT NULL AND handshake <> 'completed'
GROUP BY 1, 2, 3, 4
ORDER BY connections DESC, 1, 2, 3;

-- title: SYN-ACK retransmits on our listeners (clients that did not get our answer)
SELECT service,
       laddr || ':' || CAST(lport AS VARCHAR) AS listener,
       count(*) AS synack_retransmits,
       count(DISTINCT raddr) AS clients,
       array_to_string(array_sort(array_agg(DISTINCT comm)), ', ') AS listener_processes
FROM retransmits
WHERE kind = 'synack'
GROUP BY 1, 2
ORDER BY synack_retransmits DESC, 1, 2;
