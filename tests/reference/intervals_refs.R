# lme4 profile intervals and likelihood-ratio tables beyond shared_refs.R, for mixedfx's
# profile / confint / compare tests. Run from this folder:  Rscript intervals_refs.R
suppressMessages({library(lme4); library(jsonlite)})
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
prof <- function(formula, data, REML = TRUE, weights = NULL) {
  data$.w <- if (is.null(weights)) 1 else weights
  m <- lmer(as.formula(formula), data = data, REML = REML, control = ctrl, weights = .w)
  ci <- suppressWarnings(confint(m, method = "profile", oldNames = FALSE))
  list(formula = formula, reml = REML, names = rownames(ci), lower = unname(ci[, 1]),
       upper = unname(ci[, 2]))
}
lrt <- function(formulas, data, refit) {
  ms <- lapply(formulas, function(f) lmer(as.formula(f), data = data, control = ctrl))
  a <- suppressMessages(do.call(anova, c(ms, list(refit = refit))))
  list(formulas = formulas, refit = refit, npar = a$npar, aic = a$AIC, bic = a$BIC,
       loglik = a$logLik, deviance = a[[if ("deviance" %in% names(a)) "deviance" else "-2*log(L)"]],
       chisq = a$Chisq, df = a$Df, p_value = a[["Pr(>Chisq)"]])
}
pastes <- as.data.frame(Pastes)
out <- list(
  profile = list(
    dyestuff2_singular = prof("Yield ~ 1 + (1 | Batch)", Dyestuff2),
    sleepstudy_zerocorr = prof("Reaction ~ Days + (Days || Subject)", sleepstudy),
    sleepstudy_ml = prof("Reaction ~ Days + (Days | Subject)", sleepstudy, REML = FALSE),
    penicillin_crossed = prof("diameter ~ 1 + (1 | plate) + (1 | sample)", Penicillin),
    pastes_nested = prof("strength ~ 1 + (1 | batch/cask)", pastes),
    # prior weights 1 + Days/9; lme4's fixed-effect profiles ignore the weights' log-det
    # term (NA or shifted limits), so the tests use only the variance rows of this case
    sleepstudy_weighted = prof("Reaction ~ Days + (1 | Subject)", sleepstudy,
                               weights = 1 + sleepstudy$Days / 9)
  ),
  compare = list(
    three = lrt(c("Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)",
                  "Reaction ~ Days + (Days | Subject)"), sleepstudy, TRUE),
    reml = lrt(c("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"),
               sleepstudy, FALSE)
  ),
  software = paste("R", getRversion(), "lme4", packageVersion("lme4"))
)
write_json(out, "intervals_refs.json", digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null")
