#!/usr/bin/env bash
# Mutation testing of the scoring path with mutmut 3 (a dev dependency), one module at a time:
#
#   scripts/mutation.sh clowncar/data/bpb.py [MODULE...]     # or `all`, or `list`
#
# MODULE is a file, or FILE:Class for the mutants of one class only (the EMA lives in optim.py beside Muon).
# Each module is mutated alone in its own scratch copy of the checkout (.mutation/<module>/, git-ignored),
# with only the fast unit tests that cover it (the TESTS table below), so runs of different modules never share
# state and a rerun of one module starts clean. The figures for docs/testing.md come from
# scripts/mutation_summary.py, which also counts the survivors that scripts/mutation_equivalent.txt lists as
# equivalent (each with its reason). MUTATION_JOBS (default 1) sets mutmut's worker processes.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PY:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
JOBS=${MUTATION_JOBS:-1}

# module -> the unit tests that cover it (space-separated pytest paths or node ids, relative to the repo)
declare -A TESTS=(
  [clowncar/data/bpb.py]="tests/data/test_bpb.py"
  [clowncar/data/stream.py]="tests/data/test_stream.py"
  [clowncar/data/shards.py]="tests/data/test_shards.py"
  [clowncar/data/paths.py]="tests/data/test_shards.py tests/data/test_corpus_rules.py tests/worker/test_artifact_reader.py tests/data/test_tokenizer.py tests/test_config_rules.py tests/data/test_output_dirs.py tests/data/test_shard_glob_stays_inside.py tests/data/test_data_commands.py tests/test_doctor_data_rows.py tests/worker/test_artifact_command.py"
  [clowncar/data/tokenizer.py]="tests/data/test_tokenizer.py"
  [clowncar/config_canonical.py]="tests/worker/test_config_canonical.py"
  [clowncar/config_inert.py]="tests/test_seed_presets_config.py tests/orchestrator/test_spec_rules.py tests/worker/test_config_canonical.py"
  [clowncar/worker/evaluate.py]="tests/worker/test_evaluate.py"
  [clowncar/worker/schedule.py]="tests/worker/test_schedule.py"
  [clowncar/worker/optim.py:EMA]="tests/worker/test_optim.py"
  [clowncar/analysis/stats.py]="tests/analysis/test_stats.py"
  [clowncar/analysis/family.py]="tests/analysis/test_results_and_family.py"
  [clowncar/analysis/result.py]="tests/analysis/test_verdicts.py tests/analysis/test_results_and_family.py"
  [clowncar/analysis/runlevel.py]="tests/analysis/test_runlevel_numbers.py tests/analysis/test_runlevel_units.py tests/analysis/test_width_cells.py"
  [clowncar/analysis/width_effect.py]="tests/analysis/test_width_cells.py tests/analysis/test_runlevel_numbers.py tests/analysis/test_runlevel_units.py"
  [clowncar/analysis/seeds.py]="tests/analysis/test_runlevel_numbers.py tests/analysis/test_runlevel_units.py tests/analysis/test_seed_variance_numbers.py tests/analysis/test_results_and_family.py"
  [clowncar/analysis/cn_steps.py]="tests/analysis/test_step_numbers.py tests/analysis/test_reference_runs.py tests/analysis/test_shared_steps.py"
  [clowncar/analysis/shared_steps.py]="tests/analysis/test_shared_steps.py tests/analysis/test_step_numbers.py tests/analysis/test_reference_runs.py"
  [clowncar/analysis/reference.py]="tests/analysis/test_reference_runs.py tests/analysis/test_reference_choice.py tests/analysis/test_signals_design.py"
  [clowncar/analysis/curves.py]="tests/analysis/test_boost_numbers.py tests/analysis/test_boost_check.py"
  [clowncar/analysis/frames.py]="tests/analysis/test_run_table.py"
  [clowncar/orchestrator/resume.py]="tests/orchestrator/test_resume.py tests/orchestrator/test_resume_cut_short_asks.py"
  [clowncar/worker/quant.py]="tests/worker/test_gptq.py tests/worker/test_quant_plan.py tests/worker/test_quant.py tests/worker/test_seed_quant.py tests/worker/test_artifact.py tests/worker/test_quant_gap.py"
  [clowncar/worker/qscale.py]="tests/worker/test_qscale.py tests/worker/test_quant.py tests/worker/test_seed_quant.py tests/worker/test_quant_gap.py"
  [clowncar/worker/artifact.py]="tests/worker/test_artifact_format.py tests/worker/test_artifact_reader.py tests/worker/test_artifact.py tests/worker/test_artifact_model.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/worker/artifact_model.py]="tests/worker/test_artifact_model.py tests/worker/test_artifact_reader.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/worker/code_bytes.py]="tests/worker/test_code_bytes.py"
  [clowncar/store/importers/train_log.py]="tests/store/test_train_log_rules.py tests/store/test_log_lines.py tests/store/test_parse_snapshots.py tests/store/test_import_cut_off.py"
  [clowncar/store/importers/lines.py]="tests/store/test_log_lines.py tests/store/test_train_log_rules.py tests/store/test_parse_snapshots.py"
  [clowncar/store/importers/finals.py]="tests/store/test_log_lines.py tests/store/test_train_log_rules.py tests/store/test_parse_snapshots.py"
  [clowncar/store/importers/sweep_csv.py]="tests/store/test_sweep_file_rules.py tests/store/test_parse_snapshots.py"
  [clowncar/store/importers/micro_log.py]="tests/store/test_sweep_file_rules.py tests/store/test_parse_snapshots.py"
  [clowncar/store/importers/cadence_tsv.py]="tests/store/test_sweep_file_rules.py tests/store/test_parse_snapshots.py"
  [clowncar/model/layers.py]="tests/model/test_reference_forward.py tests/model/test_init_rules.py tests/model/test_dtype_flow.py tests/model/test_layers.py tests/model/test_seed_model.py tests/model/test_seed_trainer_layouts.py tests/worker/test_seed_trainer_training.py"
  [clowncar/model/crawler.py]="tests/model/test_reference_forward.py tests/model/test_init_rules.py tests/model/test_dtype_flow.py tests/model/test_seed_model.py tests/model/test_seed_trainer_layouts.py tests/model/test_sizes.py"
  [clowncar/model/gpt.py]="tests/model/test_reference_forward.py tests/model/test_init_rules.py tests/model/test_dtype_flow.py tests/model/test_sizes.py"
  [clowncar/worker/run.py]="tests/worker/test_run_status.py"
  [clowncar/worker/optim.py]="tests/worker/test_optim.py tests/worker/test_optim_reference.py"
  [clowncar/model/deltanet.py]="tests/model/test_deltanet.py tests/model/test_deltanet_layer.py tests/model/test_reference_forward.py tests/model/test_init_rules.py tests/model/test_seed_model.py"
  [clowncar/worker/train.py]="tests/worker/test_train_loop.py tests/worker/test_trial.py tests/worker/test_startup.py"
  [clowncar/store/summary.py]="tests/analysis/test_tables.py"
  [clowncar/store/frames.py]="tests/store/test_contract.py tests/store/test_long_reads.py tests/store/test_frame_reads.py"
  [clowncar/store/store.py]="tests/store/test_contract.py tests/store/test_frame_reads.py tests/store/test_long_reads.py tests/store/test_migrations.py tests/store/test_store_writes.py"
  [clowncar/store/imported.py]="tests/store/test_contract.py tests/store/test_import_reparse.py tests/store/test_import_same_run.py"
  [clowncar/store/importers/reread.py]="tests/store/test_import_reparse.py tests/store/test_import_same_run.py"
  [clowncar/store/importers/same_run.py]="tests/store/test_import_same_run.py tests/store/test_contract.py"
  [clowncar/orchestrator/rerun_lines.py]="tests/orchestrator/test_rerun_lines.py tests/orchestrator/test_rerun_spec.py tests/orchestrator/test_rerun_base.py tests/orchestrator/test_rerun_command.py"
  [clowncar/orchestrator/ray_oom.py]="tests/orchestrator/test_ray_oom.py"
  [clowncar/analysis/shown_configs.py]="tests/analysis/test_shown_configs.py tests/analysis/test_shown_config_labels.py tests/analysis/test_explore_views.py"
  [clowncar/analysis/environment.py]="tests/analysis/test_shown_configs.py tests/analysis/test_report_environment.py"
  [clowncar/store/retry.py]="tests/store/test_retry_rules.py tests/store/test_store_outage.py tests/orchestrator/test_study_outage.py"
  [clowncar/store/bulk.py]="tests/store/test_bulk_paths.py tests/store/test_contract.py tests/store/test_store_writes.py tests/store/test_frame_reads.py"
  [clowncar/analysis/explore.py]="tests/analysis/test_explore_views.py tests/analysis/test_tables.py"
  [clowncar/analysis/report.py]="tests/analysis/test_report_rendering.py tests/analysis/test_report_contents.py tests/analysis/test_analyze_patterns.py"
  [clowncar/analysis/document.py]="tests/analysis/test_report_rendering.py tests/analysis/test_report_contents.py"
  [clowncar/data/build.py]="tests/data/test_build_steps.py"
  [clowncar/orchestrator/record.py]="tests/orchestrator/test_record.py tests/orchestrator/test_record_outcomes.py tests/orchestrator/test_ray_oom.py tests/orchestrator/test_tune_retry.py"
  [clowncar/redact.py]="tests/deploy/test_redact.py"
  [clowncar/store/engine.py]="tests/store/test_engine.py tests/deploy/test_redact.py"
  [clowncar/store/migrations.py]="tests/store/test_migrations.py"
  [clowncar/store/lease.py]="tests/store/test_lease_rules.py tests/store/test_contract.py tests/orchestrator/test_lease.py"
  [clowncar/orchestrator/lease.py]="tests/orchestrator/test_lease.py tests/orchestrator/test_driver_outage.py"
  [clowncar/orchestrator/ray_console.py]="tests/orchestrator/test_ray_console.py"
  [clowncar/orchestrator/suggest.py]="tests/orchestrator/test_distinct_configs.py tests/orchestrator/test_search_rules.py tests/orchestrator/test_grid_order.py"
  [clowncar/orchestrator/spec.py]="tests/orchestrator/test_spec_rules.py tests/orchestrator/test_spec_refusal_places.py tests/orchestrator/test_spec_domain.py tests/orchestrator/test_spec.py tests/orchestrator/test_sweep_plan.py tests/bad_inputs/test_bad_inputs.py tests/test_did_you_mean.py"
  [clowncar/orchestrator/spec_domain.py]="tests/orchestrator/test_spec_rules.py tests/orchestrator/test_spec_refusal_places.py tests/orchestrator/test_spec_domain.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/orchestrator/spec_values.py]="tests/orchestrator/test_spec_rules.py tests/orchestrator/test_spec_refusal_places.py tests/orchestrator/test_spec.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/orchestrator/spec_checks.py]="tests/orchestrator/test_spec_rules.py tests/orchestrator/test_spec_refusal_places.py tests/orchestrator/test_spec_domain.py tests/orchestrator/test_spec.py tests/orchestrator/test_sweep_plan.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/data/fetch.py]="tests/data/test_fetch_steps.py tests/data/test_fetch_manifest.py"
  [clowncar/orchestrator/start.py]="tests/orchestrator/test_sweep_start.py tests/orchestrator/test_sweep_command_output.py tests/orchestrator/test_interrupted_lines.py"
  [clowncar/orchestrator/rungs.py]="tests/orchestrator/test_rung_rules.py tests/orchestrator/test_sweep_plan.py tests/orchestrator/test_search_rules.py"
  [clowncar/orchestrator/asha.py]="tests/orchestrator/test_rung_rules.py tests/orchestrator/test_search_rules.py tests/orchestrator/test_tune_parts.py tests/orchestrator/test_asha_seed.py"
  [clowncar/orchestrator/distinct.py]="tests/orchestrator/test_sweep_plan.py tests/orchestrator/test_spec_rules.py tests/orchestrator/test_grid_order.py"
  [clowncar/orchestrator/sweep_plan.py]="tests/orchestrator/test_sweep_plan_lines.py tests/orchestrator/test_sweep_plan.py"
  [clowncar/orchestrator/rerun.py]="tests/orchestrator/test_rerun_spec.py tests/orchestrator/test_rerun_base.py"
  [clowncar/config.py]="tests/test_config_rules.py tests/test_config.py tests/test_seed_presets_config.py tests/test_compile_mode_config.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/config_model.py]="tests/test_config_rules.py tests/test_config.py tests/test_seed_presets_config.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/config_section.py]="tests/test_config_rules.py tests/test_config.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/config_load.py]="tests/test_config_rules.py tests/test_config.py tests/test_config_sources.py tests/test_seed_presets_config.py tests/test_compile_mode_config.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/overrides.py]="tests/test_config_rules.py"
  [clowncar/presets.py]="tests/test_preset_values.py tests/test_seed_presets_config.py tests/test_config_rules.py tests/test_compile_mode_config.py"
  [clowncar/orchestrator/space_order.py]="tests/orchestrator/test_space_order.py tests/orchestrator/test_spec_rules.py"
  [clowncar/orchestrator/placement.py]="tests/orchestrator/test_gpu_book_rules.py tests/orchestrator/test_placement.py tests/orchestrator/test_utilization_model.py"
  [clowncar/orchestrator/plan.py]="tests/orchestrator/test_plan.py tests/orchestrator/test_gpu_book_rules.py tests/orchestrator/test_placement.py tests/orchestrator/test_utilization_model.py"
  [clowncar/strict_yaml.py]="tests/test_strict_yaml.py tests/test_config_rules.py tests/test_config.py"
  [clowncar/model/build.py]="tests/model/test_build_rules.py tests/model/test_sizes.py tests/model/test_seed_trainer_layouts.py tests/model/test_seed_model.py tests/model/test_dtype_flow.py tests/worker/test_optim.py"
  [clowncar/data/inspect_dir.py]="tests/data/test_inspect_rules.py"
  [clowncar/data/record.py]="tests/data/test_shard_record.py tests/data/test_inspect_rules.py tests/worker/test_trial_data_refusals.py tests/data/test_build_steps.py tests/bad_inputs/test_bad_inputs.py"
  [clowncar/events.py]="tests/test_events.py"
  [clowncar/data/corpus.py]="tests/data/test_corpus_rules.py"
  [clowncar/worker/loader.py]="tests/worker/test_train_batches.py"
  [clowncar/store/longread.py]="tests/store/test_long_read_values.py tests/store/test_long_reads.py tests/store/test_frame_reads.py"
  [clowncar/settings.py]="tests/test_settings_rules.py tests/test_settings.py tests/test_runs_dir.py"
  [clowncar/orchestrator/trainable.py]="tests/orchestrator/test_trial_outcomes.py tests/orchestrator/test_trial_process.py tests/orchestrator/test_search_rules.py"
  [clowncar/worker/startup.py]="tests/worker/test_startup_clock.py"
  [clowncar/data/atomic.py]="tests/data/test_atomic_publish.py tests/data/test_output_dirs.py"
  [clowncar/worker/progress.py]="tests/worker/test_progress_display.py"
  [clowncar/worker/provenance.py]="tests/worker/test_provenance.py"
  [clowncar/store/importers/base.py]="tests/store/test_legacy_fields.py"
  [clowncar/analysis/plots.py]="tests/analysis/test_plot_data.py tests/analysis/test_figure_needs.py"
  [clowncar/analysis/figure_needs.py]="tests/analysis/test_figure_needs.py"
  [clowncar/worker/dist.py]="tests/worker/test_dist_plumbing.py"
  [clowncar/worker/compiled.py]="tests/worker/test_compile_plan_rules.py tests/worker/test_compile_modes.py"
  [clowncar/store/importers/__init__.py]="tests/store/test_import_reports.py tests/store/test_import_command.py tests/store/test_importers.py tests/store/test_import_sweep_names.py tests/store/test_import_cut_off.py tests/store/test_import_same_run.py"
  [clowncar/store/import_command.py]="tests/store/test_import_reports.py tests/store/test_import_command.py"
  [clowncar/doctor.py]="tests/test_doctor_rows.py tests/test_doctor_data_rows.py tests/test_doctor.py"
  [clowncar/worker/artifact_commands.py]="tests/worker/test_artifact_command.py tests/worker/test_artifact_eval_parts.py"
  [clowncar/orchestrator/workers.py]="tests/orchestrator/test_worker_registry.py"
  [clowncar/orchestrator/embedded.py]="tests/orchestrator/test_embedded_reaper.py"
  [clowncar/data/demo.py]="tests/data/test_demo_rules.py tests/data/test_demo.py"
  [clowncar/cli.py]="tests/test_cli_rules.py tests/test_cli.py"
  [clowncar/errors.py]="tests/test_cli_rules.py tests/orchestrator/test_sweep_start.py"
  [clowncar/store/commands.py]="tests/store/test_store_command_output.py tests/store/test_store_ls_headlines.py tests/store/test_export_owner.py"
  [clowncar/analysis/commands.py]="tests/analysis/test_analyze_command.py tests/analysis/test_analyze_patterns.py"
  [clowncar/config_commands.py]="tests/test_config_commands.py"
  [clowncar/orchestrator/commands.py]="tests/orchestrator/test_sweep_command_output.py tests/orchestrator/test_interrupted_lines.py tests/orchestrator/test_rerun_command.py tests/orchestrator/test_rerun_base.py tests/orchestrator/test_reach.py tests/orchestrator/test_sweep_status_reasons.py tests/orchestrator/test_preflight.py"
  [clowncar/orchestrator/stored_sweep.py]="tests/orchestrator/test_sweep_command_output.py tests/orchestrator/test_rerun_command.py tests/orchestrator/test_rerun_lines.py tests/orchestrator/test_resume.py"
  [clowncar/orchestrator/status_lines.py]="tests/orchestrator/test_sweep_command_output.py tests/orchestrator/test_sweep_status_reasons.py tests/orchestrator/test_rerun_command.py"
  [clowncar/data/commands.py]="tests/data/test_data_commands.py"
  [clowncar/demo.py]="tests/test_tour_commands.py tests/test_runs_dir.py"
  [clowncar/worker/commands.py]="tests/test_tour_commands.py tests/worker/test_trial_cleanup.py"
  [clowncar/dashboard.py]="tests/test_dashboard_command.py tests/deploy/test_dashboard_launcher.py"
  [clowncar/orchestrator/launch.py]="tests/orchestrator/test_launcher.py"
  [clowncar/orchestrator/ledger.py]="tests/orchestrator/test_ledger_in_process.py tests/orchestrator/test_ledger_creation.py tests/orchestrator/test_trial_bundles.py"
  [clowncar/orchestrator/preflight.py]="tests/orchestrator/test_preflight.py tests/orchestrator/test_gpu_preflight.py"
  [clowncar/orchestrator/submit.py]="tests/orchestrator/test_submit_entry.py tests/orchestrator/test_submit_steps.py tests/orchestrator/test_submit_stop.py tests/orchestrator/test_driver_outage.py tests/orchestrator/test_resume.py tests/orchestrator/test_reach.py"
  [clowncar/orchestrator/tune.py]="tests/orchestrator/test_tune_parts.py tests/orchestrator/test_study_open.py tests/orchestrator/test_embedded_ray_start.py tests/orchestrator/test_sweep_driver.py"
  [clowncar/orchestrator/study_results.py]="tests/orchestrator/test_tune_parts.py tests/orchestrator/test_ray_oom.py"
  [clowncar/orchestrator/ray_start.py]="tests/orchestrator/test_embedded_ray_start.py"
  [clowncar/buildable.py]="tests/test_buildable.py tests/model/test_build_rules.py"
  [clowncar/did_you_mean.py]="tests/test_did_you_mean.py tests/test_config_rules.py"
  [clowncar/orchestrator/reach.py]="tests/orchestrator/test_reach.py"
  [clowncar/orchestrator/driver_state.py]="tests/orchestrator/test_driver_state.py tests/orchestrator/test_sweep_command_output.py"
  [clowncar/orchestrator/search.py]="tests/orchestrator/test_resume.py tests/orchestrator/test_resume_cut_short_asks.py tests/orchestrator/test_search_tells.py tests/orchestrator/test_search_budget.py tests/orchestrator/test_search_gate.py tests/orchestrator/test_search_rules.py tests/orchestrator/test_grid_order.py tests/orchestrator/test_search_replay.py tests/orchestrator/test_distinct_configs.py tests/orchestrator/test_gpu_hours.py tests/orchestrator/test_tune_retry.py"
  [clowncar/orchestrator/sampler.py]="tests/orchestrator/test_search_tells.py tests/orchestrator/test_search_rules.py tests/orchestrator/test_grid_order.py tests/orchestrator/test_spec.py tests/orchestrator/test_resume_cut_short_asks.py tests/orchestrator/test_sweep_plan.py"
  [clowncar/orchestrator/billing.py]="tests/orchestrator/test_gpu_hours.py tests/orchestrator/test_search_tells.py tests/orchestrator/test_search_budget.py tests/orchestrator/test_tune_retry.py tests/orchestrator/test_tune_parts.py tests/orchestrator/test_sweep_command_output.py"
  [clowncar/orchestrator/same_code.py]="tests/orchestrator/test_same_code.py tests/orchestrator/test_tune_parts.py"
  [clowncar/analysis/unrecorded.py]="tests/analysis/test_unrecorded_cautions.py tests/analysis/test_report_contents.py"
  [clowncar/analysis/cautions.py]="tests/analysis/test_report_contents.py tests/analysis/test_unrecorded_cautions.py"
  [clowncar/analysis/run_names.py]="tests/analysis/test_run_names.py tests/analysis/test_reference_runs.py"
)
# store/bulk.py has no -k: its COPY path runs only on PostgreSQL (a server shared by the run: SHARED_PG below).
# module -> a pytest -k expression that narrows the tests above (a TESTS entry cannot hold one: it is split on
# spaces). artifact.py and artifact_model.py: of the bad-input corpus, only the artifact cases that run in this
# process (the one run as `python -m clowncar`, bomb-subprocess, imports the installed package, never the mutant).
# sweep_plan.py: not the two tests of the 128-point shipped grid (~30 s each on a loaded machine, 20 s a mutant):
# one never calls the module, the other runs `sweep plan` in a subprocess; test_sweep_plan_lines.py checks the
# same kinds of line in process. sampler.py: of test_sweep_plan.py, only the shipped grid's distinct points (the
# grid sampler keeps only those).
declare -A KEYWORDS=(
  [clowncar/worker/artifact.py]="not test_bad_inputs.py or (artifacts: and not subprocess)"
  [clowncar/worker/artifact_model.py]="not test_bad_inputs.py or (artifacts: and not subprocess)"
  [clowncar/analysis/seeds.py]="not test_results_and_family.py or seed_variance"
  [clowncar/dashboard.py]="not test_dashboard_launcher.py or taken_port"
  [clowncar/orchestrator/submit.py]="test_submit_entry.py or test_submit_steps.py or test_submit_stop.py or (test_driver_outage.py and stop) or sweep_submit_with_auto or stopped_between_a_trials_store_record or stopped_after_a_worker_wrote_its_result"
  [clowncar/store/importers/sweep_csv.py]="not test_parse_snapshots.py or legacy_sweep"
  [clowncar/store/importers/micro_log.py]="not test_parse_snapshots.py or legacy_sweep"
  [clowncar/store/importers/cadence_tsv.py]="not test_parse_snapshots.py or legacy_sweep"
  [clowncar/model/layers.py]="not test_seed_trainer_training.py or fake"
  [clowncar/worker/train.py]="not (golden or exits_with or vocab_smaller or unknown_config_key or launched)"
  [clowncar/store/summary.py]="not store_export"
  [clowncar/store/frames.py]="not postgresql"
  [clowncar/store/store.py]="not postgresql"
  [clowncar/store/imported.py]="not postgresql"
  [clowncar/store/importers/reread.py]="not postgresql"
  [clowncar/store/importers/same_run.py]="not postgresql"
  [clowncar/analysis/explore.py]="not store_export"
  [clowncar/store/lease.py]="not test_contract.py or lease"
  [clowncar/orchestrator/ray_console.py]="not killed_trial_actor"
  [clowncar/orchestrator/spec.py]="not test_bad_inputs.py or (specs: and not subprocess)"
  [clowncar/orchestrator/spec_checks.py]="not test_bad_inputs.py or (specs: and not subprocess)"
  [clowncar/orchestrator/spec_values.py]="not test_bad_inputs.py or (specs: and not subprocess)"
  [clowncar/orchestrator/spec_domain.py]="not test_bad_inputs.py or (specs: and not subprocess)"
  [clowncar/data/record.py]="not test_bad_inputs.py or (shards: and not subprocess)"
  [clowncar/config.py]="not test_bad_inputs.py or (configs: and not subprocess)"
  [clowncar/config_model.py]="not test_bad_inputs.py or (configs: and not subprocess)"
  [clowncar/config_section.py]="not test_bad_inputs.py or (configs: and not subprocess)"
  [clowncar/config_load.py]="not test_bad_inputs.py or (configs: and not subprocess)"
  [clowncar/config_inert.py]="not computes_the_same_trial"
  [clowncar/store/longread.py]="not postgresql or test_long_reads.py"
  [clowncar/orchestrator/trainable.py]="not test_search_rules.py or relay"
  [clowncar/presets.py]="not (cli or lists_every_preset)"
  [clowncar/orchestrator/space_order.py]="not cli_refuses"
  [clowncar/orchestrator/placement.py]="not random_workloads"
  [clowncar/orchestrator/plan.py]="not random_workloads"
  [clowncar/doctor.py]="not test_doctor.py or not (command or demo_build or json)"
  [clowncar/store/importers/__init__.py]="(not test_importers.py or truncated_file_is_refused_whole) and not postgresql"
  [clowncar/orchestrator/sweep_plan.py]="not frugendorff_grid_merges and not plan_command_prints"
  [clowncar/orchestrator/sampler.py]="not test_sweep_plan.py or frugendorff_grid_merges"
)
# module -> mutmut's timeout_multiplier (default 15: a mutant may take 30x its tests' CPU time before it counts as a
# timeout, which counts as killed). train.py's mutants that break a loop's exit run trials of 100,000 steps: at 30x
# the ~25 s of its tests each one would hold a worker for 13 minutes.
declare -A TIMEOUT_MULTIPLIERS=(
  [clowncar/worker/train.py]=2
)
ORDER=(clowncar/data/bpb.py clowncar/data/stream.py clowncar/data/shards.py clowncar/data/paths.py clowncar/data/tokenizer.py clowncar/worker/evaluate.py clowncar/worker/schedule.py
       clowncar/worker/optim.py:EMA
       clowncar/analysis/stats.py clowncar/analysis/family.py clowncar/analysis/result.py
       clowncar/analysis/runlevel.py clowncar/analysis/seeds.py clowncar/analysis/cn_steps.py
       clowncar/analysis/reference.py
       clowncar/analysis/curves.py clowncar/analysis/frames.py
       clowncar/orchestrator/resume.py clowncar/worker/quant.py clowncar/worker/qscale.py
       clowncar/worker/artifact.py clowncar/worker/artifact_model.py clowncar/worker/code_bytes.py
       clowncar/store/importers/train_log.py clowncar/store/importers/lines.py clowncar/store/importers/finals.py
       clowncar/store/importers/sweep_csv.py clowncar/store/importers/micro_log.py
       clowncar/store/importers/cadence_tsv.py clowncar/config_canonical.py
       clowncar/model/layers.py clowncar/model/crawler.py clowncar/model/gpt.py clowncar/model/deltanet.py
       clowncar/worker/run.py clowncar/worker/optim.py clowncar/worker/train.py clowncar/store/summary.py
       clowncar/store/frames.py clowncar/store/store.py clowncar/store/bulk.py
       clowncar/analysis/explore.py clowncar/analysis/report.py clowncar/analysis/document.py
       clowncar/data/build.py clowncar/orchestrator/record.py clowncar/redact.py
       clowncar/store/engine.py clowncar/store/migrations.py clowncar/store/lease.py clowncar/orchestrator/lease.py
       clowncar/orchestrator/suggest.py clowncar/orchestrator/spec.py clowncar/orchestrator/spec_checks.py
       clowncar/data/fetch.py
       clowncar/orchestrator/start.py clowncar/orchestrator/rungs.py clowncar/orchestrator/asha.py
       clowncar/orchestrator/search.py clowncar/orchestrator/sampler.py clowncar/orchestrator/distinct.py clowncar/orchestrator/sweep_plan.py
       clowncar/orchestrator/rerun.py clowncar/config.py clowncar/config_model.py clowncar/config_section.py
       clowncar/config_load.py clowncar/config_inert.py clowncar/overrides.py clowncar/presets.py
       clowncar/orchestrator/space_order.py clowncar/orchestrator/placement.py clowncar/orchestrator/plan.py clowncar/strict_yaml.py
       clowncar/model/build.py clowncar/data/inspect_dir.py clowncar/events.py
       clowncar/data/corpus.py clowncar/worker/loader.py
       clowncar/store/longread.py clowncar/settings.py clowncar/orchestrator/trainable.py
       clowncar/worker/startup.py clowncar/data/atomic.py
       clowncar/worker/progress.py clowncar/worker/provenance.py clowncar/store/importers/base.py
       clowncar/store/imported.py clowncar/store/importers/reread.py clowncar/store/importers/same_run.py
       clowncar/orchestrator/rerun_lines.py clowncar/orchestrator/ray_oom.py clowncar/analysis/shown_configs.py
       clowncar/analysis/environment.py
       clowncar/analysis/plots.py clowncar/analysis/figure_needs.py clowncar/worker/dist.py clowncar/worker/compiled.py
       clowncar/store/importers/__init__.py clowncar/store/import_command.py
       clowncar/doctor.py clowncar/worker/artifact_commands.py
       clowncar/orchestrator/workers.py clowncar/orchestrator/embedded.py
       clowncar/data/demo.py clowncar/cli.py clowncar/errors.py clowncar/store/commands.py
       clowncar/analysis/commands.py clowncar/config_commands.py clowncar/orchestrator/commands.py
       clowncar/orchestrator/stored_sweep.py
       clowncar/orchestrator/status_lines.py
       clowncar/data/commands.py clowncar/demo.py clowncar/worker/commands.py clowncar/dashboard.py
       clowncar/orchestrator/launch.py clowncar/orchestrator/ledger.py
       clowncar/orchestrator/preflight.py clowncar/orchestrator/submit.py clowncar/orchestrator/tune.py clowncar/orchestrator/study_results.py
       clowncar/orchestrator/ray_start.py clowncar/buildable.py
       clowncar/did_you_mean.py
       clowncar/orchestrator/reach.py clowncar/orchestrator/ray_console.py clowncar/orchestrator/driver_state.py
       clowncar/store/retry.py clowncar/analysis/shared_steps.py
       clowncar/orchestrator/billing.py clowncar/orchestrator/same_code.py clowncar/analysis/unrecorded.py clowncar/analysis/width_effect.py
       clowncar/data/record.py clowncar/analysis/cautions.py clowncar/analysis/run_names.py
       clowncar/orchestrator/spec_values.py clowncar/orchestrator/spec_domain.py)

if [ $# -eq 0 ]; then
  echo "usage: scripts/mutation.sh MODULE... | all | list" >&2
  exit 2
fi
if [ "$1" = list ]; then
  for m in "${ORDER[@]}"; do echo "$m: ${TESTS[$m]}${KEYWORDS[$m]:+ -k \"${KEYWORDS[$m]}\"}"; done
  exit 0
fi
[ "$1" = all ] && set -- "${ORDER[@]}"
for m in "$@"; do
  if [ -z "${TESTS[$m]:-}" ]; then
    echo "mutation.sh: no tests listed for $m (scripts/mutation.sh list shows the modules)" >&2
    exit 2
  fi
done

# Modules whose tests run their PostgreSQL halves: one server (scripts/pg_server.py, on 127.0.0.1) serves every
# pytest session of the run through CLOWNCAR_TEST_PG_ADMIN_URL; each test drops its database after itself.
declare -A SHARED_PG=(
  [clowncar/store/bulk.py]=1
  [clowncar/store/engine.py]=1
  [clowncar/store/migrations.py]=1
  [clowncar/store/lease.py]=1
  [clowncar/store/longread.py]=1
)

# Everything below runs inside one function, which bash reads whole before running it: editing this file
# while a long run is going cannot change what that run does.
start_shared_pg() {
  local log
  log=$(mktemp)
  PYTHONPATH=$REPO "$PY" scripts/pg_server.py > "$log" 2>&1 &
  PG_PID=$!
  trap 'kill -TERM $PG_PID 2>/dev/null; wait $PG_PID 2>/dev/null' EXIT
  for _ in $(seq 600); do
    grep -q '^postgresql' "$log" && break
    kill -0 "$PG_PID" 2>/dev/null || break
    sleep 0.2
  done
  CLOWNCAR_TEST_PG_ADMIN_URL=$(grep -m1 '^postgresql' "$log") || {
    echo "mutation.sh: the shared PostgreSQL server did not start: $(tail -1 "$log")" >&2
    exit 1
  }
  export CLOWNCAR_TEST_PG_ADMIN_URL
  echo "   PostgreSQL server for the run: pid $PG_PID"
}

run_modules() {
  for m in "$@"; do
    if [ -n "${SHARED_PG[$m]:-}" ] && [ -z "${CLOWNCAR_TEST_PG_ADMIN_URL:-}" ]; then start_shared_pg; fi
    file=${m%%:*}
    cls=${m#"$file"}; cls=${cls#:}
    mod=${file%.py}; mod=${mod//\//.}
    pattern=()  # mutmut's names: MODULE.x_FUNCTION__mutmut_N, MODULE.xǁCLASSǁMETHOD__mutmut_N
    [ -n "$cls" ] && pattern=("$mod.xǁ${cls}ǁ*")
    work=$REPO/.mutation/$mod${cls:+.$cls}
    rm -rf "$work"
    mkdir -p "$work"
    # a copy of what the tests import and read; the worktree itself is never mutated
    cp -r clowncar tests benchmarks sweeps pyproject.toml scripts/mutation_plugin.py "$work"/
    find "$work" -name __pycache__ -prune -exec rm -rf {} +
    {
      echo "[mutmut]"
      echo "source_paths = clowncar"
      echo "only_mutate = $file"
      echo "pytest_add_cli_args_test_selection ="
      for t in ${TESTS[$m]}; do echo "    $t"; done
      if [ -n "${KEYWORDS[$m]:-}" ]; then echo "    -k"; echo "    ${KEYWORDS[$m]}"; fi
      echo "pytest_add_cli_args ="
      echo "    -p"
      echo "    no:cacheprovider"
      echo "    -p"
      echo "    mutation_plugin"
      echo "    -m"
      echo "    not slow"
      echo "also_copy ="
      echo "    mutation_plugin.py"
      echo "    sweeps"
      echo "    benchmarks"
      echo "process_isolation = forkserver"
      echo "use_git_change_detection = false"
      if [ -n "${TIMEOUT_MULTIPLIERS[$m]:-}" ]; then echo "timeout_multiplier = ${TIMEOUT_MULTIPLIERS[$m]}"; fi
    } > "$work/setup.cfg"
    echo "== $m (tests: ${TESTS[$m]}; $JOBS process(es)); started $(date -u +%FT%TZ)"
    start=$(date +%s)
    # No PYTHONPATH: mutmut puts mutants/ first on sys.path itself, and a PYTHONPATH entry naming mutants/
    # before it exists would be cached as "nothing here", so the installed package would be imported instead.
    (cd "$work" && env -u PYTHONPATH CI= "$PY" -m mutmut run --max-children "$JOBS" "${pattern[@]}" > run.log 2>&1) || {
      echo "mutmut failed on $m; see $work/run.log" >&2
      tr '\r' '\n' < "$work/run.log" | grep -v '^.Generating\|^.Running' | tail -20 >&2
      exit 1
    }
    seconds=$(( $(date +%s) - start ))
    echo "   took $seconds s"
    MUTATION_LABEL=$m MUTATION_TESTS="${TESTS[$m]}${KEYWORDS[$m]:+ -k \"${KEYWORDS[$m]}\"}" MUTATION_SECONDS=$seconds MUTATION_DATE=$(date -u +%F) \
      "$PY" scripts/mutation_summary.py "$work" "$file" "${pattern[@]}"
  done
}
run_modules "$@"; exit
