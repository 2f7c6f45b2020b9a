//! Each knob's audit for the chosen CPUs and, for runtime knobs, the
//! writes that would fix it. Which knobs there are, and what each may
//! touch, is the catalogue's (`crate::catalogue`).

mod boot;
mod ctx;
mod held;
pub mod irqbalance;
pub mod partitioning;
mod platform;
mod runtime;
mod seen;

pub use ctx::{Ctx, bracketed};
pub use held::DEFAULT_MEMLOCK_BYTES;
pub use seen::MAX_IRQ_RATE;

use crate::catalogue::CATALOGUE;
use crate::model::{KnobId, KnobReport};

/// Every knob in catalogue order.
pub fn audit_all(ctx: &Ctx) -> Vec<KnobReport> {
    CATALOGUE.iter().map(|k| audit(ctx, k.id)).collect()
}

/// One knob's audit.
pub fn audit(ctx: &Ctx, id: KnobId) -> KnobReport {
    use KnobId as K;
    match id {
        K::Isolcpus => boot::isolcpus(ctx),
        K::NohzFull => boot::nohz_full(ctx),
        K::RcuNocbs => boot::rcu_nocbs(ctx),
        K::Irqaffinity => boot::irqaffinity(ctx),
        K::Smt => boot::smt(ctx),
        K::CpufreqDriver => boot::pstate_mode(ctx),
        K::Clocksource => boot::clocksource(ctx),
        K::NxHugePages => platform::nx_huge_pages(ctx),
        K::PleGap => platform::ple_gap(ctx),
        K::KvmclockPeriodicSync => platform::kvmclock_periodic_sync(ctx),
        K::PowerSupply => platform::power_supply(ctx),
        K::Governor => runtime::governor(ctx),
        K::MinFreq => runtime::min_freq(ctx),
        K::Turbo => runtime::boost(ctx),
        K::EnergyPerformancePreference => platform::energy_performance_preference(ctx),
        K::EnergyPerfBias => platform::energy_perf_bias(ctx),
        K::Irqbalance => irqbalance::irqbalance(ctx),
        K::DefaultIrqAffinity => runtime::default_irq_affinity(ctx),
        K::IrqAffinity => runtime::irq_affinity(ctx),
        K::WorkqueueCpumask => partitioning::workqueues(ctx),
        K::MachinecheckIgnoreCe => partitioning::machinecheck(ctx),
        K::TimerMigration
        | K::NumaBalancing
        | K::SchedRtRuntimeUs
        | K::StatInterval
        | K::NmiWatchdog
        | K::Watchdog
        | K::HungTaskTimeoutSecs
        | K::PerfEventMaxSampleRate
        | K::RandomizeVaSpace => runtime::sysctl(ctx, id),
        K::TransparentHugepage => runtime::thp(ctx),
        K::Ksmtuned => platform::ksmtuned(ctx),
        K::Ksm => runtime::ksm(ctx),
        K::CpuDmaLatency => held::cpu_dma_latency(ctx),
        K::Memlock => held::memlock(ctx),
        K::SystemdCpuAffinity => partitioning::systemd_cpu_affinity(ctx),
        K::ThreadAffinity => partitioning::threads(ctx),
        K::InterruptsSeen => seen::interrupts_seen(ctx),
        K::RunnableThreads => seen::runnable_seen(ctx),
        K::ResidualNoise => seen::residual_noise(ctx),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bracketed_selection() {
        assert_eq!(
            super::ctx::bracketed("always [madvise] never"),
            Some("madvise")
        );
        assert_eq!(
            super::ctx::bracketed("[always] madvise never"),
            Some("always")
        );
        assert_eq!(super::ctx::bracketed("madvise"), None);
    }
}
