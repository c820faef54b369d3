/*
 * policy.c - the payment decision: accept, step-up (PIN or the phone's last 4 digits) or refuse,
 * from the identification result, the amount and what the ledger knows of the customer.
 *
 * A pure function so the rules can be tested exhaustively and replayed from the evidence chain.
 * The order of thought:
 *  1. Hard refusals, which no second factor can fix: nobody (or a locked / inactive / wallet-less
 *     customer) to charge, a face that does not reach the identification threshold (a PIN proves
 *     knowledge, not presence: accepting a non-matching face plus a PIN would let a stolen PIN pay
 *     with any face), too few usable frames, or a liveness score so low it looks like a spoof.
 *  2. Doubts a second factor can settle: a large amount, a small top-1/top-2 margin, a customer
 *     known to look like someone else, uncertain liveness (no blink, weak score), or an identifier
 *     that itself said "uncertain".
 *  3. No doubt: accept.
 * Every comparison is written so a NaN input falls on the cautious side.
 */
#include <string.h>

#include "pay/pay.h"

fp_pay_policy fp_pay_policy_default(void) {
    fp_pay_policy p;
    memset(&p, 0, sizeof p);
    p.stepup_above = 5000;
    p.phone_stepup_max = 2000;
    p.min_margin = 0.10f;
    p.min_liveness = 0.5f;
    p.refuse_liveness = 0.10f;
    p.require_blink = 1;
    p.min_frames = 3;
    p.max_stepup_failures = 5;
    return p;
}

fp_pay_decision fp_pay_decide(const fp_pay_policy *p, const fp_identify_result *id, int64_t amount,
                              const fp_pay_customer_state *c) {
    fp_pay_policy def = fp_pay_policy_default();
    if (!p) p = &def;
    fp_pay_decision d = {FP_PAY_REFUSE, FP_PAY_WHY_NO_MATCH, FP_STEPUP_NONE};
    if (!id || !c) return d;

    uint32_t refuse = 0, doubt = 0;
    /* The user id must be a terminated, non-empty string, whatever the caller put in the struct. */
    int has_user = memchr(id->user_id, '\0', sizeof id->user_id) != NULL && id->user_id[0] != '\0';
    if ((id->decision != FP_DECISION_MATCH && id->decision != FP_DECISION_UNCERTAIN) || !has_user)
        refuse |= FP_PAY_WHY_NO_MATCH;
    if (!(id->score >= id->threshold)) refuse |= FP_PAY_WHY_SCORE;
    if (id->frames_used < p->min_frames) refuse |= FP_PAY_WHY_FRAMES;
    if (!(id->liveness_score >= p->refuse_liveness)) refuse |= FP_PAY_WHY_SPOOF;
    if (c->face_locked) refuse |= FP_PAY_WHY_LOCKED;
    if (!c->active || !c->has_wallet) refuse |= FP_PAY_WHY_CUSTOMER;

    if (amount > p->stepup_above) doubt |= FP_PAY_WHY_AMOUNT;
    if (!(id->margin >= p->min_margin)) doubt |= FP_PAY_WHY_MARGIN;
    if (c->lookalike) doubt |= FP_PAY_WHY_LOOKALIKE;
    if ((p->require_blink && !id->blink) || !(id->liveness_score >= p->min_liveness))
        doubt |= FP_PAY_WHY_LIVENESS;
    if (id->decision == FP_DECISION_UNCERTAIN) doubt |= FP_PAY_WHY_UNCERTAIN;

    fp_pay_stepup method = FP_STEPUP_NONE;
    if (doubt) {
        /* The PIN is the stronger factor; four digits of a phone number are semi-public, so they
         * only settle small amounts. */
        if (c->has_pin)
            method = FP_STEPUP_PIN;
        else if (c->has_phone && amount <= p->phone_stepup_max)
            method = FP_STEPUP_PHONE4;
        else
            refuse |= FP_PAY_WHY_NO_STEPUP;
    }
    d.reasons = refuse | doubt;
    if (refuse) {
        d.verdict = FP_PAY_REFUSE;
        d.stepup = FP_STEPUP_NONE;
    } else if (doubt) {
        d.verdict = FP_PAY_STEPUP;
        d.stepup = method;
    } else {
        d.verdict = FP_PAY_ACCEPT;
        d.stepup = FP_STEPUP_NONE;
    }
    return d;
}
