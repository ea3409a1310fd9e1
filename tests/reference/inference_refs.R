# More Satterthwaite (lmerTest) and Kenward-Roger (pbkrtest) references: type III F tests
# with interactions, an unbalanced nested design, ML Satterthwaite. Run from the repository
# root:   Rscript tests/reference/inference_refs.R
# Writes tests/reference/inference_nested.csv (simulated, seed 20261125) and
# tests/reference/inference_refs.json.
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
set.seed(20261125)
sites <- 8; batches <- 4
d <- expand.grid(rep = 1:3, batch = 1:batches, site = 1:sites)
d$batch <- paste0(d$site, "-", d$batch)
d$trt <- factor(sample(c("A", "B", "C"), nrow(d), replace = TRUE), levels = c("A", "B", "C"))
d$sex <- factor(sample(c("f", "m"), nrow(d), replace = TRUE), levels = c("f", "m"))
d$x <- round(rnorm(nrow(d), 2, 1), 3)
u_site <- rnorm(sites, 0, 1.5); u_batch <- rnorm(sites * batches, 0, 0.8)
u_slope <- rnorm(sites, 0, 0.4)
bi <- as.integer(factor(d$batch, levels = unique(d$batch)))
d$y <- round(10 + c(A = 0, B = 0.8, C = 1.5)[as.character(d$trt)] + 0.5 * (d$sex == "m") +
  0.3 * d$x + 0.6 * (d$trt == "C") * (d$sex == "m") + u_site[d$site] + u_batch[bi] +
  u_slope[d$site] * d$x + rnorm(nrow(d), 0, 1), 4)
d <- d[sample(nrow(d), 70), c("y", "trt", "sex", "x", "site", "batch")]  # unbalanced
d <- d[order(d$site, d$batch), ]
write.csv(d, "tests/reference/inference_nested.csv", row.names = FALSE)
d <- read.csv("tests/reference/inference_nested.csv")
d$trt <- factor(d$trt, levels = c("A", "B", "C")); d$sex <- factor(d$sex)
d$site <- factor(d$site); d$batch <- factor(d$batch)
u <- read.csv("tests/reference/ddf_sleep_unbalanced.csv")
u$Subject <- factor(u$Subject)
u$period <- factor(u$period, levels = c("early", "middle", "late"))
pen <- read.csv("../shared/datasets/Penicillin.csv")
pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
pen$half <- factor(ifelse(pen$sample %in% c("A", "B", "C"), "first", "second"))
cases <- list(
  list(name = "nested_factorial_reml", data = "d", REML = TRUE,
       formula = "y ~ trt * sex + x + (1 | site/batch)"),
  list(name = "nested_factorial_ml", data = "d", REML = FALSE,
       formula = "y ~ trt * sex + x + (1 | site/batch)"),
  list(name = "nested_slope_reml", data = "d", REML = TRUE,
       formula = "y ~ trt * x + (x | site) + (1 | site:batch)"),
  list(name = "sleep_factor_by_numeric_reml", data = "u", REML = TRUE,
       formula = "Reaction ~ period * dose + Days + (Days | Subject)"),
  list(name = "penicillin_fixed_reml", data = "pen", REML = TRUE,
       formula = "diameter ~ half + (1 | plate) + (1 | sample)"),
  list(name = "nested_weighted_reml", data = "d", REML = TRUE, weights = TRUE,
       formula = "y ~ trt + x + (1 | site/batch)")
)
d$w <- 1 + (d$x > 2)  # prior weights of the weighted case
out <- list()
for (cs in cases) {
  ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))
  m <- if (isTRUE(cs$weights)) {
    lmer(as.formula(cs$formula), data = d, REML = cs$REML, weights = w, control = ctl)
  } else lmer(as.formula(cs$formula), data = get(cs$data), REML = cs$REML, control = ctl)
  co <- summary(m, ddf = "Satterthwaite")$coefficients
  a <- anova(m, ddf = "Satterthwaite", type = 3)
  res <- list(formula = cs$formula, reml = cs$REML, data = cs$data,
              weights = isTRUE(cs$weights),
              fixef = as.list(fixef(m)),
              satterthwaite = list(df = as.list(co[, "df"]), t = as.list(co[, "t value"]),
                                   p = as.list(co[, "Pr(>|t|)"])),
              anova_satterthwaite = list(terms = rownames(a), F = a[["F value"]],
                                         num_df = a[["NumDF"]], den_df = a[["DenDF"]],
                                         sum_sq = a[["Sum Sq"]], p = a[["Pr(>F)"]]))
  # pbkrtest 0.5.2's Kenward-Roger disagrees with the paper's V for prior weights
  # (df 84 where V = Z G Z' + sigma^2 W^-1 gives 49): weighted KR is not a reference
  if (cs$REML && !isTRUE(cs$weights)) {
    ck <- summary(m, ddf = "Kenward-Roger")$coefficients
    ak <- anova(m, ddf = "Kenward-Roger", type = 3)
    res$kenward_roger <- list(df = as.list(ck[, "df"]), se = as.list(ck[, "Std. Error"]),
                              p = as.list(ck[, "Pr(>|t|)"]))
    res$anova_kenward_roger <- list(terms = rownames(ak), F = ak[["F value"]],
                                    num_df = ak[["NumDF"]], den_df = ak[["DenDF"]],
                                    sum_sq = ak[["Sum Sq"]], p = ak[["Pr(>F)"]])
    # a two-row contrast (trt B - A and C - A jointly) straight from pbkrtest
    if (cs$data == "d") {
      L <- matrix(0, 2, length(fixef(m)))
      L[1, 2] <- 1; L[2, 3] <- 1
      kr <- KRmodcomp(m, L)
      res$krmodcomp_trt <- list(F = kr$stats$Fstat, ddf = kr$stats$ddf,
                                scale = kr$stats$F.scaling)
      # lmerTest's contest with a right-hand side, both methods, and one row
      cs_s <- contest(m, L, rhs = c(1, 1), ddf = "Satterthwaite")
      cs_k <- contest(m, L, rhs = c(1, 1), ddf = "Kenward-Roger")
      one <- contest(m, L[1, , drop = FALSE] - L[2, , drop = FALSE], ddf = "Satterthwaite")
      res$contest <- list(
        satterthwaite = list(F = cs_s[["F value"]], den_df = cs_s[["DenDF"]],
                             p = cs_s[["Pr(>F)"]]),
        kenward_roger = list(F = cs_k[["F value"]], den_df = cs_k[["DenDF"]],
                             p = cs_k[["Pr(>F)"]]),
        one_row = list(F = one[["F value"]], den_df = one[["DenDF"]]))
    }
  }
  out[[cs$name]] <- res
}
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/inference_refs.json")
