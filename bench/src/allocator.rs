//! `allocator`: allocation cycles of the offer allocator alone (`mantle_allocator`), with
//! no master, no network and no clock; the time is passed in. Two shapes, after Apache
//! Mesos's allocator benchmarks (src/tests/hierarchical_allocator_benchmarks.cpp and
//! hierarchical_allocator_tests.cpp):
//!
//! - [`decline_offers`], `HierarchicalAllocator_BENCHMARK_Test.DeclineOffers`: every
//!   framework declines every offer for ever, so each cycle offers every agent to the
//!   next framework that has not declined it yet, until none is left.
//! - [`quota`], `BENCHMARK_HierarchicalAllocator_WithQuotaParam.LargeAndSmallQuota`:
//!   one cycle that satisfies the quota of many small and large roles, chopping agents.
//! - [`busy`], the master's cycles in the `cluster` benchmark: a full cluster where a
//!   few slots free between cycles and are offered again.

use anyhow::bail;
use mantle_allocator::{
    Allocation, AllocatorConfig, DrfAllocator, FrameworkOptions, MinAllocatable, Quota,
};
use mantle_api::{AgentId, FrameworkId, Resources};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

fn parse(text: &str) -> anyhow::Result<Resources> {
    Resources::parse_text(text, "*").map_err(anyhow::Error::msg)
}

fn new_allocator(seed: u64) -> DrfAllocator {
    DrfAllocator::new(AllocatorConfig {
        min_allocatable: MinAllocatable::default(),
        fair_sharing_excluded: vec![],
        filter_gpu_resources: true,
        seed,
    })
}

fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

fn two_decimals(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Adds `n` active frameworks in role `*`, `framework-0` on, and returns their IDs.
fn add_star_frameworks(allocator: &mut DrfAllocator, n: usize) -> Vec<FrameworkId> {
    let options = FrameworkOptions {
        roles: vec!["*".to_string()],
        gpu_resources: false,
    };
    let ids: Vec<FrameworkId> = (0..n)
        .map(|j| FrameworkId::new(format!("framework-{j}")))
        .collect();
    for id in &ids {
        allocator.add_framework(id, &options, true);
    }
    ids
}

/// Each ID's position in `ids`.
fn index_of<T: std::hash::Hash + Eq>(ids: &[T]) -> HashMap<&T, usize> {
    ids.iter().enumerate().map(|(i, id)| (id, i)).collect()
}

/// An allocation as the next round recovers it: framework, role, agent, resources.
type Held = (FrameworkId, String, AgentId, Resources);

/// The DeclineOffers shape. F frameworks in role `*`; A agents of
/// `cpus:24;mem:4096;disk:4096;ports:[31000-32000]`, each with `cpus:16;mem:2014;disk:1024`
/// and 16 single ports already used by framework `i % F`. Each round recovers the
/// previous round's offers with a filter that never expires (a decline with
/// `refuse_seconds` INT_MAX), then runs one timed cycle. The first round offers every
/// agent's remainder once; every round after offers each agent to a framework that has
/// not declined it yet, so offers stay at A per round for about F rounds, then drop to 0.
/// Mesos runs F * 2 rounds; `rounds` shortens that.
pub fn decline_offers(
    agents: usize,
    frameworks: usize,
    rounds: Option<usize>,
    seed: u64,
) -> anyhow::Result<()> {
    if agents == 0 || frameworks == 0 {
        bail!("--agents and --frameworks must be at least 1");
    }
    let rounds = rounds.unwrap_or(frameworks * 2);
    eprintln!(
        "bench allocator: {agents} agents, {frameworks} frameworks, {rounds} rounds, seed {seed}"
    );
    let mut allocator = new_allocator(seed);
    let framework_ids = add_star_frameworks(&mut allocator, frameworks);
    let framework_index = index_of(&framework_ids);

    // What each agent has, and the part of it a framework already holds: as in Mesos,
    // the used ports are the 1001-port range cut into 16 fragments, here 16 two-port
    // ranges 62 apart.
    let total = parse("cpus:24;mem:4096;disk:4096;ports:[31000-32000]")?;
    let ports: Vec<String> = (0..16)
        .map(|j| {
            let begin = 31000 + j * 62;
            format!("{begin}-{}", begin + 1)
        })
        .collect();
    let used = parse(&format!(
        "cpus:16;mem:2014;disk:1024;ports:[{}]",
        ports.join(",")
    ))?;
    // What the first round should offer on every agent: cpus:8;mem:2082;disk:3072 and
    // the 969 free ports.
    let expected_first_offer = total.minus(&used);

    // Built before the clock starts, so add_agents_ms is the allocator's work alone.
    let agent_ids: Vec<AgentId> = (0..agents)
        .map(|i| AgentId::new(format!("agent-{i}")))
        .collect();
    let agent_index = index_of(&agent_ids);
    let agent_used: Vec<[(FrameworkId, String, Resources); 1]> = (0..agents)
        .map(|i| {
            [(
                framework_ids[i % frameworks].clone(),
                "*".to_string(),
                used.clone(),
            )]
        })
        .collect();
    let started = Instant::now();
    for (id, used) in agent_ids.iter().zip(&agent_used) {
        allocator.add_agent(id, &total, used);
    }
    let add_agents_ms = ms(started.elapsed());
    drop(agent_used);
    eprintln!("bench allocator: added {agents} agents in {add_agents_ms:.2} ms");

    // Sanity checks, outside the timed cycles: which (framework, agent) pairs have been
    // offered (a declined pair must never be offered again), and whether the first
    // round offered each agent exactly once with the expected remainder.
    let mut offered_pairs = vec![0u64; (agents * frameworks).div_ceil(64)];
    let mut repeated_pairs = 0usize;
    let mut unexpected_first = 0usize;
    let mut first_round_agents = HashSet::new();

    let mut held: Vec<Held> = Vec::new();
    let mut durations_ms = Vec::with_capacity(rounds);
    let mut offer_counts = Vec::with_capacity(rounds);
    let report_every = (rounds / 10).max(1);
    for round in 0..rounds {
        let now = round as f64;
        let recovering = Instant::now();
        for (framework, role, agent, resources) in held.drain(..) {
            allocator.recover(
                &framework,
                &role,
                &agent,
                &resources,
                Some(i32::MAX as f64),
                now,
            );
        }
        let recover_ms = ms(recovering.elapsed());
        let started = Instant::now();
        let allocations = allocator.allocate(now);
        let elapsed = ms(started.elapsed());
        let checking = Instant::now();
        durations_ms.push(elapsed);
        offer_counts.push(allocations.len());

        for allocation in allocations {
            let resources = allocation.resources.to_resources();
            let (Some(&f), Some(&a)) = (
                framework_index.get(&*allocation.framework),
                agent_index.get(&*allocation.agent),
            ) else {
                bail!(
                    "an allocation names an unknown framework or agent: {} on {}",
                    allocation.framework,
                    allocation.agent
                );
            };
            let bit = a * frameworks + f;
            if offered_pairs[bit / 64] & (1 << (bit % 64)) != 0 {
                repeated_pairs += 1;
            }
            offered_pairs[bit / 64] |= 1 << (bit % 64);
            if round == 0 {
                if resources != expected_first_offer && unexpected_first == 0 {
                    eprintln!(
                        "bench allocator: round 1 offered {} on {}, expected {}",
                        resources.to_text(),
                        allocation.agent,
                        expected_first_offer.to_text()
                    );
                }
                if resources != expected_first_offer || !first_round_agents.insert(a) {
                    unexpected_first += 1;
                }
            }
            held.push((
                FrameworkId::clone(&allocation.framework),
                allocation.role.to_string(),
                AgentId::clone(&allocation.agent),
                resources,
            ));
        }

        if (round + 1) % report_every == 0 || round == 0 || round + 1 == rounds {
            eprintln!(
                "bench allocator: round {}/{rounds}: {elapsed:.2} ms, {} offers \
                 (untimed: recovering the previous offers {recover_ms:.2} ms, \
                 converting and checking these {:.2} ms)",
                round + 1,
                offer_counts[round],
                ms(checking.elapsed())
            );
        }
    }

    let offered: usize = offer_counts.iter().sum();
    let rounds_with_offers = offer_counts.iter().filter(|n| **n > 0).count();
    eprintln!(
        "bench allocator: {offered} offers in all, {rounds_with_offers} rounds with offers \
         (agents * frameworks = {} once every agent has been offered to every framework)",
        agents * frameworks
    );
    if repeated_pairs > 0 {
        eprintln!(
            "bench allocator: WARNING: {repeated_pairs} offers went to a framework that had \
             declined that agent for ever"
        );
    }
    if rounds > 0 && (unexpected_first > 0 || first_round_agents.len() != agents) {
        eprintln!(
            "bench allocator: WARNING: round 1 made {} offers on {} of {agents} agents, \
             {unexpected_first} of them not one offer of {}",
            offer_counts[0],
            first_round_agents.len(),
            expected_first_offer.to_text()
        );
    }

    let mut sorted = durations_ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "bench": "allocation_cycle",
            "agents": agents,
            "frameworks": frameworks,
            "rounds": rounds,
            "p50_ms": two_decimals(crate::percentile(&sorted, 50.0)),
            "p99_ms": two_decimals(crate::percentile(&sorted, 99.0)),
            "max_ms": two_decimals(sorted.last().copied().unwrap_or(0.0)),
            "first_ms": two_decimals(durations_ms.first().copied().unwrap_or(0.0)),
            "offers_first_round": offer_counts.first().copied().unwrap_or(0),
            "add_agents_ms": two_decimals(add_agents_ms),
        })
    );
    Ok(())
}

/// The LargeAndSmallQuota shape. Of `roles` roles, five in six are small
/// (`smallQuotaRole{i}`, quota `cpus:1;mem:1024;disk:1024`, half an agent) and one in
/// six large (`largeQuotaRole{i}`, `cpus:4;mem:4096;disk:4096`, two agents), each with
/// one framework; agents are `cpus:2;mem:2048;disk:2048`, as many as Mesos uses:
/// small / 5 + large * 5 (3000 for 3000 roles). Quota guarantees equal limits. The first
/// cycle satisfies every quota; the second should allocate nothing, since every role is
/// at its limit.
pub fn quota(agents: Option<usize>, roles: usize, seed: u64) -> anyhow::Result<()> {
    if roles == 0 {
        bail!("--roles must be at least 1");
    }
    let large = roles / 6;
    let small = roles - large;
    let mesos_agents = small / 5 + large * 5;
    let agents = match agents {
        Some(n) if n != mesos_agents => {
            eprintln!(
                "bench allocator: --agents {n} differs from the {mesos_agents} agents Mesos \
                 uses for {small} small and {large} large quota roles; using {n}"
            );
            n
        }
        Some(n) => n,
        None => mesos_agents,
    };
    eprintln!(
        "bench allocator: quota: {agents} agents, {roles} roles ({small} small, {large} \
         large), {roles} frameworks, seed {seed}"
    );
    let small_quota = parse("cpus:1;mem:1024;disk:1024")?;
    let large_quota = parse("cpus:4;mem:4096;disk:4096")?;
    let agent_total = parse("cpus:2;mem:2048;disk:2048")?;

    // (role, its framework, its guarantee), small roles first as in Mesos.
    let mut setup: Vec<(String, FrameworkId, &Resources)> = Vec::with_capacity(roles);
    for i in 0..small {
        setup.push((
            format!("smallQuotaRole{i}"),
            FrameworkId::new(format!("framework_small_{i}")),
            &small_quota,
        ));
    }
    for i in 0..large {
        setup.push((
            format!("largeQuotaRole{i}"),
            FrameworkId::new(format!("framework_large_{i}")),
            &large_quota,
        ));
    }

    // Mesos adds the frameworks and agents, then sets the quotas.
    let mut allocator = new_allocator(seed);
    for (role, framework, _) in &setup {
        let options = FrameworkOptions {
            roles: vec![role.clone()],
            gpu_resources: false,
        };
        allocator.add_framework(framework, &options, true);
    }
    for i in 0..agents {
        allocator.add_agent(&AgentId::new(format!("agent-{i}")), &agent_total, &[]);
    }
    for (role, _, guarantee) in &setup {
        allocator.set_quota(
            role,
            Some(Quota {
                guarantees: (*guarantee).clone(),
                limits: (*guarantee).clone(),
            }),
        );
    }

    let started = Instant::now();
    let first = allocator.allocate(1.0);
    let first_ms = ms(started.elapsed());
    eprintln!(
        "bench allocator: first cycle: {} allocations in {first_ms:.2} ms",
        first.len()
    );
    let started = Instant::now();
    let second = allocator.allocate(2.0);
    let second_ms = ms(started.elapsed());
    eprintln!(
        "bench allocator: second cycle: {} allocations in {second_ms:.2} ms",
        second.len()
    );
    if !second.is_empty() {
        eprintln!("bench allocator: WARNING: the second cycle should allocate nothing");
    }
    check_guarantees(&setup, &first);

    println!(
        "{}",
        serde_json::json!({
            "bench": "allocation_cycle_quota",
            "agents": agents,
            "roles": roles,
            "frameworks": roles,
            "first_ms": two_decimals(first_ms),
            "first_allocations": first.len(),
            "second_ms": two_decimals(second_ms),
            "second_allocations": second.len(),
        })
    );
    Ok(())
}

/// Reports on stderr whether the first cycle gave every role exactly its guarantee
/// (cpus, mem and disk, summed over its allocations).
fn check_guarantees(setup: &[(String, FrameworkId, &Resources)], allocations: &[Allocation]) {
    let mut given: HashMap<&str, Resources> = HashMap::new();
    for allocation in allocations {
        given
            .entry(&*allocation.role)
            .or_default()
            .add(&allocation.resources.to_resources());
    }
    let (mut met, mut short, mut over) = (0usize, 0usize, 0usize);
    for (role, _, guarantee) in setup {
        let got = given.remove(role.as_str()).unwrap_or_default();
        let mut role_short = false;
        let mut role_over = false;
        for kind in ["cpus", "mem", "disk"] {
            let (have, want) = (got.scalar(kind), guarantee.scalar(kind));
            role_short |= have + 1e-9 < want;
            role_over |= have > want + 1e-9;
        }
        if role_short && short < 3 {
            eprintln!(
                "bench allocator: {role} got {} of its guarantee {}",
                got.to_text(),
                guarantee.to_text()
            );
        }
        if role_over && over < 3 {
            eprintln!(
                "bench allocator: {role} got {}, past its limit {}",
                got.to_text(),
                guarantee.to_text()
            );
        }
        short += role_short as usize;
        over += role_over as usize;
        met += !role_short as usize;
    }
    eprintln!(
        "bench allocator: after the first cycle {met} of {} roles have their guarantee, \
         {short} fall short, {over} got more than their limit; {} other roles got \
         resources",
        setup.len(),
        given.values().count()
    );
}

/// The busy shape: A agents of two slots (`cpus:2;mem:1024;disk:2048`, a slot being
/// `cpus:1;mem:512;disk:1024`), every slot held by one of F frameworks. Each round frees
/// `freed` random slots (their holders recover them), then runs one timed cycle, whose
/// offers the frameworks keep, as the `cluster` benchmark's load frameworks accept
/// every freed slot.
pub fn busy(
    agents: usize,
    frameworks: usize,
    freed: usize,
    rounds: usize,
    seed: u64,
) -> anyhow::Result<()> {
    if agents == 0 || frameworks == 0 || freed == 0 || freed > 2 * agents {
        bail!("--agents and --frameworks must be at least 1, --busy from 1 to two per agent");
    }
    let mut allocator = new_allocator(seed);
    let framework_ids = add_star_frameworks(&mut allocator, frameworks);
    let framework_index = index_of(&framework_ids);
    let total = parse("cpus:2;mem:1024;disk:2048")?;
    let slot = parse("cpus:1;mem:512;disk:1024")?;
    let agent_ids: Vec<AgentId> = (0..agents)
        .map(|i| AgentId::new(format!("agent-{i}")))
        .collect();
    let agent_index = index_of(&agent_ids);
    // Slot 2i and 2i+1 are agent i's; each holds the framework that has it.
    let mut holders: Vec<usize> = (0..2 * agents).map(|s| (s / 2) % frameworks).collect();
    for (i, id) in agent_ids.iter().enumerate() {
        let used: Vec<(FrameworkId, String, Resources)> = [2 * i, 2 * i + 1]
            .iter()
            .map(|s| {
                (
                    framework_ids[holders[*s]].clone(),
                    "*".to_string(),
                    slot.clone(),
                )
            })
            .collect();
        allocator.add_agent(id, &total, &used);
    }
    let mut rng = seed.max(1);
    let mut durations_ms = Vec::with_capacity(rounds);
    let mut lost = 0usize;
    for round in 0..rounds {
        let now = round as f64;
        let mut free: Vec<usize> = Vec::with_capacity(freed);
        while free.len() < freed {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let s = (rng % (2 * agents) as u64) as usize;
            if !free.contains(&s) {
                free.push(s);
            }
        }
        for &s in &free {
            let framework = &framework_ids[holders[s]];
            allocator.recover(framework, "*", &agent_ids[s / 2], &slot, None, now);
        }
        let started = Instant::now();
        let allocations = allocator.allocate(now);
        durations_ms.push(ms(started.elapsed()));
        for allocation in allocations {
            let (Some(&a), Some(&f)) = (
                agent_index.get(&*allocation.agent),
                framework_index.get(&*allocation.framework),
            ) else {
                bail!("an allocation names an unknown framework or agent");
            };
            let slots = allocation.resources.to_resources().scalar("cpus") as usize;
            for _ in 0..slots {
                match free.iter().position(|s| *s / 2 == a) {
                    Some(p) => holders[free.swap_remove(p)] = f,
                    None => bail!(
                        "round {round}: {} offered more than was freed",
                        allocation.agent
                    ),
                }
            }
        }
        lost += free.len();
    }
    if lost > 0 {
        bail!("{lost} freed slots were not offered again in their round");
    }
    let mut sorted = durations_ms;
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "bench": "allocation_cycle",
            "shape": "busy",
            "agents": agents,
            "frameworks": frameworks,
            "freed_per_round": freed,
            "rounds": rounds,
            "p50_ms": (crate::percentile(&sorted, 50.0) * 1000.0).round() / 1000.0,
            "p99_ms": (crate::percentile(&sorted, 99.0) * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
