/*
 * host-reclaim/ebbd/agent_link.h — ebbd's end of one VM's ebb agent channel
 * (docs/agent-protocol.md), shared by the backends: the ebb VMM's NAME.agent
 * socket (backend_ebb.c) and a libvirt domain's org.ebb.agent.0 virtio-serial
 * channel (host-reclaim/libvirt/ebbd_libvirt.c).
 *
 * observe connects to the channel's unix socket (as a client; after a failed
 * connect, an EOF or a hostile peer it waits 1 s, doubling to 10 s, and the
 * wait starts again at 1 s once a report came), says hello until the agent
 * answers, keeps the newest report (periodic ones, else one asked for when
 * the last is older than 2 s) and fills the balancer's agent fields from it;
 * pressure messages are counted as they come (poll, on the daemon's loop).
 *
 * GUEST: everything the agent sends is checked by the agent client
 * (client/agent_client.h); a peer that sends lines the client refuses is
 * dropped and waited for like a closed one (one batch of junk before a
 * valid hello, the tail of a line cut off when the last client left, is
 * forgiven), and logged at most once a minute (the count of lines refused
 * in between goes with the next line).
 * Losing the channel is not losing the VM: the agent fields just go stale.
 *
 * Threading: the daemon's event thread only.
 */
#ifndef EBB_EBBD_AGENT_LINK_H
#define EBB_EBBD_AGENT_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "client/agent_client.h"
#include "client/log.h"
#include "host-reclaim/balancer.h"

struct ebbd_agent_link_counters {
	uint64_t nr_connects;         /* channel opened */
	uint64_t nr_hellos;           /* the agent answered hello */
	uint64_t nr_drops;            /* channel closed: EOF, error or hostile peer */
	uint64_t nr_bad_lines;        /* lines the agent client refused (all sessions) */
	uint64_t nr_bad_logged;       /* log lines about them */
};

struct ebbd_agent_link {
	const char *name;             /* the VM's, for log lines (not owned) */
	struct vmm_log log;
	struct agent_client *agent;
	bool hello_ok;
	bool junk_forgiven;           /* this connection had junk before its hello */
	uint32_t caps;                /* AGENT_CAP_* from hello */
	uint64_t next_try_ns;         /* no connection attempt before this */
	uint32_t backoff_ms;
	bool have_report;
	uint64_t report_ns;           /* when the newest report arrived */
	struct agent_report report;
	uint64_t nr_pressure, pressure_need_bytes;
	uint64_t bad_log_ns;          /* last log line about hostile input */
	uint64_t bad_seen;            /* nr_bad_lines already accounted for */
	uint64_t bad_unlogged;        /* bad lines since that log line */
	struct ebbd_agent_link_counters c;
};

void ebbd_agent_link_init(struct ebbd_agent_link *l, const char *name, const struct vmm_log *log);
/* Closes the channel.  The link may be used again (observe reconnects). */
void ebbd_agent_link_fini(struct ebbd_agent_link *l);
/* Connects to path (a unix socket; NULL or "": none) when due, says hello,
 * takes what arrived and fills obs's agent fields and caps when the agent
 * answered.  Blocks at most ~0.7 s (hello, report). */
void ebbd_agent_link_observe(struct ebbd_agent_link *l, const char *path,
			     struct ebb_bal_vm_obs *obs);
/* The channel's fd once the agent said hello, else -1. */
int ebbd_agent_link_fd(const struct ebbd_agent_link *l);
/* One non-blocking read: pressure messages that arrived, or -errno when the
 * channel closed (it is dropped; observe reconnects after the wait). */
int ebbd_agent_link_poll(struct ebbd_agent_link *l);
/* EBB_BAL_ACT_AGENT_DROP_CACHE / EBB_BAL_ACT_AGENT_RECLAIM through the agent:
 * 0, -ENOTCONN or the agent client's -errno. */
int ebbd_agent_link_reclaim(struct ebbd_agent_link *l, const struct ebb_bal_action *a);

#endif
