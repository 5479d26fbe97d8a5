/*
 * The steps of one rotation's journal, as codes. The state DB and the JSON
 * output keep the words (rk_step_name); the engine decides on the codes.
 *
 *   planned -> generated -> staged -> verified -> [set] -> promoted
 *           -> restarted | restart_failed -> done
 *   any step before promoted -> failed | rolled_back
 */
#ifndef REKEY_STEP_H
#define REKEY_STEP_H

enum rk_step {
	RK_STEP_UNKNOWN = -1,	/* a word no version of rekey wrote */
	RK_STEP_PLANNED,
	RK_STEP_GENERATED,
	RK_STEP_STAGED,
	RK_STEP_VERIFIED,
	RK_STEP_SET,
	RK_STEP_PROMOTED,
	RK_STEP_RESTARTED,
	RK_STEP_RESTART_FAILED,
	RK_STEP_DONE,
	RK_STEP_FAILED,
	RK_STEP_ROLLED_BACK,
	RK_STEP_COUNT
};

/* "planned", ...; "unknown" for anything out of range. */
const char *rk_step_name(enum rk_step s);
/* The code of a journal word; RK_STEP_UNKNOWN (and NULL) for anything else. */
enum rk_step rk_step_parse(const char *word);
/* The new value is live: promoted, restarted, restart_failed or done. */
int rk_step_is_promoted(enum rk_step s);
/* A new value was written but is not live: staged, verified or set. */
int rk_step_is_staged(enum rk_step s);
/* Nothing more will happen to this rotation: done, failed or rolled_back. */
int rk_step_is_final(enum rk_step s);

/*
 * What became of one secret in a run, and of one dependent: codes for the
 * engine, words (rk_result_name, rk_dep_result_name) only for the report.
 */
enum rk_result {
	RK_RESULT_NONE,		/* still in the pipeline */
	RK_RESULT_ROTATED,
	RK_RESULT_RESTORED,	/* a rollback made an earlier value current again */
	RK_RESULT_FAILED,
	RK_RESULT_ROLLED_BACK,	/* failed after stage, and the stage was undone */
	RK_RESULT_INTERRUPTED,	/* stopped (SIGTERM) mid-way: --resume finishes it */
	RK_RESULT_COUNT
};

enum rk_dep_result {
	RK_DEP_RESTARTED,
	RK_DEP_SKIPPED,		/* none of its secrets changed */
	RK_DEP_NOT_RESTARTED,	/* --no-restart */
	RK_DEP_FAILED,
	RK_DEP_PENDING,		/* the run was interrupted before its turn */
	RK_DEP_RESULT_COUNT
};

/* "rotated", "restored", "failed", "rolled_back", "interrupted"; "" for NONE. */
const char *rk_result_name(enum rk_result r);
/* The secret's value changed in this run (rotated or restored). */
int rk_result_changed(enum rk_result r);
/* "restarted", "skipped", "not_restarted", "failed", "pending". */
const char *rk_dep_result_name(enum rk_dep_result r);

#endif
