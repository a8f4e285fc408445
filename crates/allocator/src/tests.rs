//! Rule tests (one `check` helper, many short rows) and property tests over random
//! clusters.

use super::*;
use mantle_api::{AgentId, FrameworkId, Resources};
use proptest::prelude::*;
use std::collections::HashMap;

fn res(text: &str) -> Resources {
    Resources::parse_text(text, "*").unwrap()
}

fn fw(id: &str) -> FrameworkId {
    FrameworkId::new(id)
}

fn ag(id: &str) -> AgentId {
    AgentId::new(id)
}

fn roles(list: &[&str]) -> FrameworkOptions {
    FrameworkOptions {
        roles: list.iter().map(|r| r.to_string()).collect(),
        gpu_resources: false,
    }
}

/// A small scripted cluster. Script lines:
/// `agent NAME RESOURCES`, `framework NAME ROLE[,ROLE]`, `gpuframework NAME ROLE`,
/// `used FRAMEWORK ROLE AGENT RESOURCES`, `weight ROLE W`,
/// `quota ROLE GUARANTEES [LIMITS]`, `suppress FRAMEWORK [ROLE]`, `revive FRAMEWORK`,
/// `inactive FRAMEWORK`, `release FRAMEWORK ROLE AGENT RESOURCES`, `decline FRAMEWORK ROLE AGENT SECONDS` (declines what the last
/// cycle offered it there), `allocate` (runs a cycle; its offers are kept),
/// `at SECONDS` (sets the clock), `min TEXT` (min allocatable, set before anything else).
fn run(script: &str) -> Vec<String> {
    let mut config = AllocatorConfig::default();
    let mut alloc: Option<DrfAllocator> = None;
    let mut now = 0.0;
    let mut last: Vec<Allocation> = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "min" {
            config.min_allocatable = MinAllocatable::parse(words[1]).unwrap();
            continue;
        }
        let a = alloc.get_or_insert_with(|| DrfAllocator::new(config.clone()));
        match words[0] {
            "agent" => a.add_agent(&ag(words[1]), &res(words[2]), &[]),
            "framework" => a.add_framework(
                &fw(words[1]),
                &roles(&words[2].split(',').collect::<Vec<_>>()),
                true,
            ),
            "gpuframework" => a.add_framework(
                &fw(words[1]),
                &FrameworkOptions {
                    roles: vec![words[2].to_string()],
                    gpu_resources: true,
                },
                true,
            ),
            "used" => a.add_used(&fw(words[1]), words[2], &ag(words[3]), &res(words[4])),
            "weight" => a.set_weight(words[1], words[2].parse().unwrap()),
            "quota" => a.set_quota(
                words[1],
                Some(Quota {
                    guarantees: res(words[2]),
                    limits: words.get(3).map(|l| res(l)).unwrap_or_default(),
                }),
            ),
            "suppress" => a.suppress(
                &fw(words[1]),
                &words[2..].iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ),
            "revive" => a.revive(&fw(words[1]), &[]),
            "inactive" => a.set_framework_active(&fw(words[1]), false),
            "decline" => {
                let offer = last
                    .iter()
                    .find(|x| {
                        *x.framework == fw(words[1])
                            && &*x.role == words[2]
                            && *x.agent == ag(words[3])
                    })
                    .unwrap_or_else(|| panic!("no offer to decline in: {line}"));
                let seconds: f64 = words[4].parse().unwrap();
                a.recover(
                    &offer.framework,
                    &offer.role,
                    &offer.agent,
                    &offer.resources.to_resources(),
                    Some(seconds),
                    now,
                );
            }
            "release" => a.recover(
                &fw(words[1]),
                words[2],
                &ag(words[3]),
                &res(words[4]),
                None,
                now,
            ),
            "at" => now = words[1].parse().unwrap(),
            "allocate" => last = a.allocate(now),
            other => panic!("unknown script word {other}"),
        }
    }
    let mut out: Vec<String> = last
        .iter()
        .map(|x| {
            format!(
                "{}({})@{}={}",
                x.framework,
                x.role,
                x.agent,
                x.resources.to_resources().to_text()
            )
        })
        .collect();
    out.sort();
    out
}

fn check(script: &str, want: &[&str]) {
    assert_eq!(run(script), want, "script:\n{script}");
}

#[test]
fn whole_agent_goes_to_the_lowest_share() {
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1\nallocate",
        &["f1(r1)@a1=cpus:4;mem:1024"],
    );
    check(
        "agent a1 cpus:4;mem:1024\nagent a2 cpus:4;mem:1024\nframework f1 r1\nused f1 r1 a1 cpus:1\nframework f2 r2\nused f2 r2 a2 cpus:2\nallocate",
        &["f1(r1)@a1=cpus:3;mem:1024", "f2(r2)@a2=cpus:2;mem:1024"],
    );
}

#[test]
fn cycles_visit_only_agents_with_something_left() {
    let mut a = DrfAllocator::new(AllocatorConfig::default());
    for i in 0..4 {
        a.add_agent(&ag(&format!("a{i}")), &res("cpus:2;mem:512"), &[]);
    }
    // New agents join the list without a rebuild of it.
    assert_eq!(a.order.len(), 4);
    assert!(!a.order_dirty);
    a.add_framework(&fw("f1"), &roles(&["r1"]), true);
    assert_eq!(a.allocate(0.0).len(), 4);
    // Everything is offered: the next cycle has no agent to visit.
    assert!(a.order.is_empty());
    assert!(a.allocate(1.0).is_empty());
    // A freed slot puts its agent back, once however often it is freed.
    a.recover(
        &fw("f1"),
        "r1",
        &ag("a2"),
        &res("cpus:1;mem:256"),
        None,
        2.0,
    );
    a.recover(&fw("f1"), "r1", &ag("a2"), &res("cpus:1"), None, 2.0);
    assert_eq!(a.order.len(), 1);
    let again = a.allocate(3.0);
    assert_eq!(again.len(), 1);
    assert_eq!(*again[0].agent, ag("a2"));
    assert_eq!(
        again[0].resources.to_resources().to_text(),
        "cpus:2;mem:256"
    );
    // A deactivated agent is not visited, and comes back with what it has once active.
    a.set_agent_active(&ag("a3"), false);
    a.recover(
        &fw("f1"),
        "r1",
        &ag("a3"),
        &res("cpus:2;mem:512"),
        None,
        4.0,
    );
    assert!(a.allocate(5.0).is_empty());
    a.set_agent_active(&ag("a3"), true);
    let back = a.allocate(6.0);
    assert_eq!(back.len(), 1);
    assert_eq!(*back[0].agent, ag("a3"));
}

#[test]
fn roles_are_ordered_before_frameworks() {
    // r1 holds half the cluster through f1; r2 holds nothing, so r2's f3 is served
    // first even though f2 (in r1) holds nothing either.
    check(
        "agent a1 cpus:4;mem:1024\nagent a2 cpus:4;mem:1024\nframework f1 r1\nused f1 r1 a1 cpus:4;mem:1024\nframework f2 r1\nframework f3 r2\nallocate",
        &["f3(r2)@a2=cpus:4;mem:1024"],
    );
}

#[test]
fn weights_divide_shares() {
    // r1 holds 1/4 with weight 2 (share 1/8); r2 holds 1/8 with weight 1: r1 first.
    check(
        "agent a1 cpus:8;mem:800\nagent a2 cpus:8;mem:800\nframework f1 r1\nframework f2 r2\nweight r1 2\nused f1 r1 a1 cpus:4;mem:400\nused f2 r2 a1 cpus:2;mem:200\nused f2 r2 a2 cpus:8;mem:800\nallocate",
        &["f1(r1)@a1=cpus:2;mem:200"],
    );
}

#[test]
fn decline_filters_follow_the_subset_rule() {
    let base = "agent a1 cpus:4;mem:1024\nframework f1 r1\nallocate\ndecline f1 r1 a1 30\n";
    check(&format!("{base}at 1\nallocate"), &[]);
    check(
        &format!("{base}at 31\nallocate"),
        &["f1(r1)@a1=cpus:4;mem:1024"],
    );
    check(
        &format!("{base}framework f2 r1\nat 1\nallocate"),
        &["f2(r1)@a1=cpus:4;mem:1024"],
    );
    check(
        &format!("{base}revive f1\nat 1\nallocate"),
        &["f1(r1)@a1=cpus:4;mem:1024"],
    );
    // Zero seconds sets no filter.
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1\nallocate\ndecline f1 r1 a1 0\nallocate",
        &["f1(r1)@a1=cpus:4;mem:1024"],
    );
    // A larger offer than what was declined passes the filter.
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1\nframework f0 r0\nused f0 r0 a1 cpus:2\nsuppress f0\nallocate\ndecline f1 r1 a1 30\nrelease f0 r0 a1 cpus:2\nat 1\nallocate",
        &["f1(r1)@a1=cpus:4;mem:1024"],
    );
}

#[test]
fn declined_agents_leave_the_cycles_until_a_filter_expires_or_a_framework_comes() {
    let mut a = DrfAllocator::new(AllocatorConfig::default());
    for name in ["a1", "a2", "a3"] {
        a.add_agent(&ag(name), &res("cpus:4;mem:1024"), &[]);
    }
    a.add_framework(&fw("f1"), &roles(&["r1"]), true);
    assert_eq!(a.allocate(0.0).len(), 3);
    let whole = res("cpus:4;mem:1024");
    a.recover(&fw("f1"), "r1", &ag("a1"), &whole, Some(30.0), 0.0);
    a.recover(&fw("f1"), "r1", &ag("a2"), &whole, Some(60.0), 0.0);
    let half = res("cpus:2;mem:512");
    a.recover(&fw("f1"), "r1", &ag("a3"), &half, Some(30.0), 0.0);
    assert!(a.allocate(1.0).is_empty());
    // Nobody can take them: the next cycles do not visit them.
    assert!(a.order.is_empty());
    assert_eq!(a.sleeping.len(), 3);
    assert!(a.allocate(2.0).is_empty());
    let offered = |offers: Vec<Allocation>| {
        let mut agents: Vec<String> = offers.iter().map(|o| o.agent.to_string()).collect();
        agents.sort();
        agents
    };
    // a3 comes back with more than its filter covers, the others when their filters
    // expire.
    a.recover(&fw("f1"), "r1", &ag("a3"), &half, None, 3.0);
    assert_eq!(offered(a.allocate(3.0)), ["a3"]);
    assert_eq!(offered(a.allocate(31.0)), ["a1"]);
    assert_eq!(offered(a.allocate(61.0)), ["a2"]);
    // A new framework may take what the others declined: every agent is visited again.
    for name in ["a1", "a2", "a3"] {
        a.recover(&fw("f1"), "r1", &ag(name), &whole, Some(100.0), 61.0);
    }
    assert!(a.allocate(62.0).is_empty());
    assert!(a.order.is_empty());
    a.add_framework(&fw("f2"), &roles(&["r1"]), true);
    assert_eq!(offered(a.allocate(63.0)), ["a1", "a2", "a3"]);
}

#[test]
fn expired_filters_give_back_their_room_and_new_ones_still_hold() {
    let script = "agent a1 cpus:4;mem:1024\nframework f1 r1\nallocate\ndecline f1 r1 a1 30\n\
                  at 31\nallocate\ndecline f1 r1 a1 30\nat 32\nallocate";
    assert!(run(script).is_empty());
    let mut a = DrfAllocator::new(AllocatorConfig::default());
    a.add_agent(&ag("a1"), &res("cpus:4;mem:1024"), &[]);
    a.add_framework(&fw("f1"), &roles(&["r1"]), true);
    let offer = a.allocate(0.0).remove(0);
    let whole = offer.resources.to_resources();
    a.recover(&fw("f1"), "r1", &ag("a1"), &whole, Some(30.0), 0.0);
    let agent = |a: &DrfAllocator| a.agent_ids[&ag("a1")];
    assert_eq!(a.agents[agent(&a)].filters.list.len(), 1);
    assert!(a.allocate(1.0).is_empty());
    // Past its expiry the next visit drops the filter, its list and the cache.
    assert_eq!(a.allocate(31.0).len(), 1);
    let filters = &a.agents[agent(&a)].filters;
    assert_eq!(filters.list.capacity(), 0);
    assert!(filters.blocked_for.is_none());
}

#[test]
fn suppressed_and_inactive_frameworks_get_nothing() {
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1\nsuppress f1\nallocate",
        &[],
    );
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1\nsuppress f1\nrevive f1\nallocate",
        &["f1(r1)@a1=cpus:4;mem:1024"],
    );
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1\ninactive f1\nallocate",
        &[],
    );
    // Suppressing one role of a multi-role framework leaves the other.
    check(
        "agent a1 cpus:4;mem:1024\nframework f1 r1,r2\nsuppress f1 r1\nallocate",
        &["f1(r2)@a1=cpus:4;mem:1024"],
    );
}

#[test]
fn minimum_offer_size() {
    check("agent a1 cpus:0.005;mem:24\nframework f1 r1\nallocate", &[]);
    check(
        "agent a1 cpus:0.01\nframework f1 r1\nallocate",
        &["f1(r1)@a1=cpus:0.01"],
    );
    check(
        "min cpus:1;mem:64\nagent a1 cpus:1;mem:32\nframework f1 r1\nallocate",
        &[],
    );
    check(
        "min cpus:1;mem:64|disk:5\nagent a1 cpus:1;disk:5\nframework f1 r1\nallocate",
        &["f1(r1)@a1=cpus:1;disk:5"],
    );
}

#[test]
fn reservations_go_to_their_role_and_its_subroles() {
    let agent = "agent a1 cpus:2;cpus(eng):4;mem:1024\n";
    check(
        &format!("{agent}framework f1 ops\nallocate"),
        &["f1(ops)@a1=cpus:2;mem:1024"],
    );
    check(
        &format!("{agent}framework f1 eng/web\nallocate"),
        &["f1(eng/web)@a1=cpus:2;cpus(eng):4;mem:1024"],
    );
    // Reserved resources left after an unreserved grant still reach the owner.
    check(
        &format!("{agent}framework f1 ops\nframework f2 eng\nused f2 eng a1 cpus:1\nallocate"),
        &["f1(ops)@a1=cpus:1;mem:1024", "f2(eng)@a1=cpus(eng):4"],
    );
}

#[test]
fn quota_limits_cap_offers() {
    check(
        "agent a1 cpus:8;mem:1024\nframework f1 r1\nquota r1 cpus:0 cpus:3;mem:512\nallocate",
        &["f1(r1)@a1=cpus:3;mem:512"],
    );
    // At its limit, a role gets nothing more.
    check(
        "agent a1 cpus:8;mem:1024\nframework f1 r1\nused f1 r1 a1 cpus:3\nquota r1 cpus:0 cpus:3\nallocate",
        &["f1(r1)@a1=mem:1024"],
    );
}

#[test]
fn guarantees_are_served_first_and_held_back() {
    // r1 has a guarantee of 6 cpus: it gets them first, and r2 only what is left.
    for seed in 1..20 {
        let mut a = DrfAllocator::new(AllocatorConfig {
            seed,
            ..Default::default()
        });
        a.add_agent(&ag("a1"), &res("cpus:4;mem:512"), &[]);
        a.add_agent(&ag("a2"), &res("cpus:4;mem:512"), &[]);
        a.add_framework(&fw("f2"), &roles(&["r2"]), true);
        a.add_framework(&fw("f1"), &roles(&["r1"]), true);
        a.set_quota(
            "r1",
            Some(Quota {
                guarantees: res("cpus:6;mem:256"),
                limits: Resources::new(),
            }),
        );
        let got = a.allocate(0.0);
        let cpus = |role: &str| -> f64 {
            got.iter()
                .filter(|x| &*x.role == role)
                .map(|x| x.resources.to_resources().scalar("cpus"))
                .sum()
        };
        assert_eq!((cpus("r1"), cpus("r2")), (6.0, 2.0), "seed {seed}: {got:?}");
    }
}

#[test]
fn gpu_agents_need_gpu_capable_frameworks() {
    check(
        "agent a1 cpus:4;gpus:1;mem:64\nframework f1 r1\nallocate",
        &[],
    );
    check(
        "agent a1 cpus:4;gpus:1;mem:64\ngpuframework f1 r1\nallocate",
        &["f1(r1)@a1=cpus:4;gpus:1;mem:64"],
    );
}

#[test]
fn hierarchical_roles_share_their_parent() {
    // eng/a and eng/b each hold less than ops, but together more: ops goes first.
    let used = "agent a2 cpus:7;mem:700\nused fa ROLEA a2 cpus:2;mem:200\nused fb ROLEB a2 cpus:2;mem:200\nused fo ops a2 cpus:3;mem:300\n";
    let script = |a: &str, b: &str| {
        format!(
            "agent a1 cpus:4;mem:400\nframework fa {a}\nframework fb {b}\nframework fo ops\n{}allocate",
            used.replace("ROLEA", a).replace("ROLEB", b)
        )
    };
    check(&script("eng/a", "eng/b"), &["fo(ops)@a1=cpus:4;mem:400"]);
    check(&script("a", "b"), &["fa(a)@a1=cpus:4;mem:400"]);
}

#[test]
fn min_allocatable_parses() {
    let ok = |min: &str, available: &str, want: bool| {
        assert_eq!(
            MinAllocatable::parse(min).unwrap().admits(&res(available)),
            want,
            "{min} {available}"
        )
    };
    ok("cpus:0.01|mem:32", "cpus:0.01", true);
    ok("cpus:0.01|mem:32", "mem:31", false);
    ok("cpus:1;mem:64", "cpus:1;mem:32", false);
    ok("", "disk:1", true);
    assert!(MinAllocatable::parse("ports:[1-2]").is_err());
}

// ----- properties -----

#[derive(Clone, Debug)]
struct Cluster {
    agents: Vec<(u32, u32)>,
    frameworks: Vec<usize>,
    weights: Vec<f64>,
    seed: u64,
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        prop::collection::vec((1u32..16, 64u32..4096), 1..12),
        prop::collection::vec(0usize..3, 1..6),
        prop::collection::vec(prop::sample::select(vec![1.0, 2.0, 3.0]), 3),
        1u64..1000,
    )
        .prop_map(|(agents, frameworks, weights, seed)| Cluster {
            agents,
            frameworks,
            weights,
            seed,
        })
}

fn build(c: &Cluster) -> DrfAllocator {
    let mut a = DrfAllocator::new(AllocatorConfig {
        seed: c.seed,
        ..Default::default()
    });
    for (i, w) in c.weights.iter().enumerate() {
        a.set_weight(&format!("r{i}"), *w);
    }
    for (i, (cpus, mem)) in c.agents.iter().enumerate() {
        a.add_agent(
            &ag(&format!("a{i}")),
            &res(&format!("cpus:{cpus};mem:{mem};ports:[1000-1010]")),
            &[],
        );
    }
    for (i, role) in c.frameworks.iter().enumerate() {
        a.add_framework(&fw(&format!("f{i}")), &roles(&[&format!("r{role}")]), true);
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over many cycles with random declines and task ends, nothing is offered twice at
    /// once and offers never exceed an agent's total.
    #[test]
    fn never_over_allocates(c in cluster(), steps in prop::collection::vec((0u8..3, 0u32..1000), 1..40)) {
        let mut a = build(&c);
        let totals: HashMap<AgentId, Resources> = c.agents.iter().enumerate()
            .map(|(i, (cpus, mem))| (ag(&format!("a{i}")), res(&format!("cpus:{cpus};mem:{mem};ports:[1000-1010]"))))
            .collect();
        let mut held: Vec<Allocation> = Vec::new();
        for (now, (action, pick)) in steps.into_iter().enumerate() {
            let now = now as f64;
            match action {
                0 if !held.is_empty() => {
                    let x = held.swap_remove(pick as usize % held.len());
                    a.recover(&x.framework, &x.role, &x.agent, &x.resources.to_resources(), Some(2.0), now);
                }
                _ => held.extend(a.allocate(now)),
            }
            let mut per_agent: HashMap<AgentId, Resources> = HashMap::new();
            for x in &held {
                let sum = per_agent.entry(AgentId::clone(&x.agent)).or_default();
                let r = x.resources.to_resources();
                // Disjoint: adding never overlaps ports or exceeds the total.
                prop_assert!(totals[&*x.agent].minus(sum).contains(&r), "{} offered twice", r.to_text());
                sum.add(&r);
            }
            for (agent, sum) in per_agent {
                prop_assert!(totals[&agent].contains(&sum));
            }
        }
    }

    /// Reserved resources only ever reach their role or its sub-roles.
    #[test]
    fn reservations_stay_in_their_role(seed in 1u64..500, n in 1usize..8) {
        let mut a = DrfAllocator::new(AllocatorConfig { seed, ..Default::default() });
        for i in 0..n {
            a.add_agent(&ag(&format!("a{i}")), &res("cpus:1;cpus(eng):2;mem(ops):64;mem:64"), &[]);
        }
        for (i, role) in ["eng", "eng/web", "ops", "dev"].iter().enumerate() {
            a.add_framework(&fw(&format!("f{i}")), &roles(&[role]), true);
        }
        for now in 0..5 {
            for x in a.allocate(now as f64) {
                for (key, _) in x.resources.to_resources().entries() {
                    prop_assert!(key.role == "*" || is_within(&x.role, &key.role), "{} got {}", x.role, key.role);
                }
                a.recover(&x.framework, &x.role, &x.agent, &x.resources.to_resources(), None, now as f64);
            }
        }
    }
}

/// Runs many cycles where each framework launches one small task per offer and tasks
/// end at random; returns the long-run average share of cpus per role.
fn long_run_shares(weights: &[f64], seed: u64) -> Vec<f64> {
    let mut a = DrfAllocator::new(AllocatorConfig {
        seed,
        ..Default::default()
    });
    for (i, w) in weights.iter().enumerate() {
        a.set_weight(&format!("r{i}"), *w);
        a.add_framework(&fw(&format!("f{i}")), &roles(&[&format!("r{i}")]), true);
    }
    for i in 0..20 {
        a.add_agent(&ag(&format!("a{i}")), &res("cpus:8;mem:8192"), &[]);
    }
    let task = res("cpus:1;mem:1024");
    let mut running: Vec<(FrameworkId, String, AgentId)> = Vec::new();
    let mut rng = seed;
    let mut sums = vec![0.0; weights.len()];
    for now in 0..400 {
        let now = now as f64;
        for x in a.allocate(now) {
            let offered = x.resources.to_resources();
            let mut left = offered.clone();
            while left.contains(&task) {
                left.subtract(&task);
                running.push((
                    FrameworkId::clone(&x.framework),
                    x.role.to_string(),
                    AgentId::clone(&x.agent),
                ));
            }
            a.recover(&x.framework, &x.role, &x.agent, &left, None, now);
        }
        // A quarter of the tasks end each cycle.
        let mut kept = Vec::new();
        for t in running.drain(..) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng.is_multiple_of(4) {
                a.recover(&t.0, &t.1, &t.2, &task, None, now);
            } else {
                kept.push(t);
            }
        }
        running = kept;
        if now >= 100.0 {
            for (i, sum) in sums.iter_mut().enumerate() {
                *sum += running.iter().filter(|t| t.1 == format!("r{i}")).count() as f64 / 160.0;
            }
        }
    }
    sums.iter().map(|s| s / 300.0).collect()
}

#[test]
fn equal_weights_converge_to_equal_shares() {
    for seed in [1, 7, 42] {
        let shares = long_run_shares(&[1.0, 1.0, 1.0], seed);
        let mean = shares.iter().sum::<f64>() / 3.0;
        for s in &shares {
            assert!(
                (s - mean).abs() / mean < 0.05,
                "seed {seed}: shares {shares:?}"
            );
        }
    }
}

#[test]
fn weights_two_to_one_give_shares_two_to_one() {
    for seed in [1, 7, 42] {
        let shares = long_run_shares(&[2.0, 1.0], seed);
        let ratio = shares[0] / shares[1];
        assert!(
            (ratio - 2.0).abs() / 2.0 < 0.05,
            "seed {seed}: shares {shares:?}"
        );
    }
}

#[test]
fn guarantees_are_met_before_roles_without_quota() {
    for seed in [1, 2, 3, 4, 5] {
        let mut a = DrfAllocator::new(AllocatorConfig {
            seed,
            ..Default::default()
        });
        for i in 0..10 {
            a.add_agent(&ag(&format!("a{i}")), &res("cpus:2;mem:2048"), &[]);
        }
        a.add_framework(&fw("greedy"), &roles(&["bulk"]), true);
        a.add_framework(&fw("q"), &roles(&["prod"]), true);
        a.set_quota(
            "prod",
            Some(Quota {
                guarantees: res("cpus:7;mem:7000"),
                limits: Resources::new(),
            }),
        );
        let got = a.allocate(0.0);
        let prod: f64 = got
            .iter()
            .filter(|x| &*x.role == "prod")
            .map(|x| x.resources.to_resources().scalar("cpus"))
            .sum();
        assert!(prod >= 7.0 - 1e-9, "seed {seed}: prod got {prod} cpus");
    }
}
