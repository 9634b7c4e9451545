"""Chinese / English labels for the dashboard.

Every visible string goes through `t(key, lang)`. The language is kept in the
browser (a `dcc.Store` in local storage) and is an input of every page callback,
so switching language re-renders the current page at once without losing filters.
A missing key falls back to English, then to the key itself, so a new label never
breaks a page.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

TEXT: dict[str, dict[str, str]] = {
    "app_title": {"zh": "CivicWatt 公共机构能耗监测", "en": "CivicWatt energy monitoring"},
    "nav_overview": {"zh": "总览", "en": "Overview"},
    "nav_ranking": {"zh": "排名", "en": "Rankings"},
    "nav_institution": {"zh": "机构", "en": "Institution"},
    "nav_alerts": {"zh": "告警", "en": "Alerts"},
    "nav_reports": {"zh": "报表", "en": "Reports"},
    "nav_mv": {"zh": "节能量核定", "en": "Savings verification"},
    "logout": {"zh": "退出", "en": "Log out"},
    "signed_in_as": {"zh": "当前用户", "en": "Signed in as"},
    "role_admin": {"zh": "管理员", "en": "administrator"},
    "role_region": {"zh": "区域管理员", "en": "region manager"},
    "role_institution": {"zh": "机构用户", "en": "institution user"},
    "forbidden": {"zh": "无权访问此数据。", "en": "You do not have access to these data."},
    "not_found": {"zh": "页面不存在。", "en": "Page not found."},
    "no_data": {"zh": "暂无数据。", "en": "No data yet."},
    "not_available": {"zh": "该功能尚未启用。", "en": "This feature is not available yet."},
    "region": {"zh": "区域", "en": "Region"},
    "category": {"zh": "类别", "en": "Category"},
    "year": {"zh": "年份", "en": "Year"},
    "all": {"zh": "全部", "en": "All"},
    "search_name": {"zh": "按名称搜索", "en": "Search by name"},
    "indicator": {"zh": "指标", "en": "Indicator"},
    "export_csv": {"zh": "导出 CSV", "en": "Export CSV"},
    "rows_found": {"zh": "条记录", "en": "institutions"},
    # categories
    "cat_government": {"zh": "党政机关", "en": "Government office"},
    "cat_school": {"zh": "学校", "en": "School"},
    "cat_hospital": {"zh": "医院", "en": "Hospital"},
    "cat_venue": {"zh": "场馆", "en": "Venue"},
    "cat_other": {"zh": "其他", "en": "Other"},
    # energies
    "en_electricity": {"zh": "电力", "en": "Electricity"},
    "en_water": {"zh": "水", "en": "Water"},
    "en_natural_gas": {"zh": "天然气", "en": "Natural gas"},
    "en_heat": {"zh": "热力", "en": "Heat"},
    "en_gasoline": {"zh": "汽油", "en": "Gasoline"},
    "en_diesel": {"zh": "柴油", "en": "Diesel"},
    "en_lpg": {"zh": "液化石油气", "en": "LPG"},
    "en_coal": {"zh": "煤", "en": "Coal"},
    "en_pv": {"zh": "光伏发电", "en": "PV generation"},
    # sub-items
    "sub_total": {"zh": "总表", "en": "Main"},
    "sub_lighting_socket": {"zh": "照明插座", "en": "Lighting & sockets"},
    "sub_hvac": {"zh": "空调", "en": "HVAC"},
    "sub_power": {"zh": "动力", "en": "Power"},
    "sub_special": {"zh": "特殊用电", "en": "Special"},
    "sub_unaccounted": {"zh": "未计量", "en": "Unaccounted"},
    # indicators
    "ind_kgce": {"zh": "综合能耗 (kgce)", "en": "Total energy (kgce)"},
    "ind_kgce_per_m2": {"zh": "单位建筑面积能耗 (kgce/m²)", "en": "Energy per floor area (kgce/m²)"},
    "ind_kgce_per_person": {"zh": "人均综合能耗 (kgce/人)", "en": "Energy per person (kgce/person)"},
    "ind_water_m3_per_person": {"zh": "人均用水量 (m³/人)", "en": "Water per person (m³/person)"},
    "ind_kgco2_per_m2": {"zh": "单位面积碳排放 (kgCO₂/m²)", "en": "CO₂ per floor area (kgCO₂/m²)"},
    "ind_heating_kgce_per_m2": {"zh": "单位采暖面积采暖能耗 (kgce/m²)", "en": "Heating energy per heated area (kgce/m²)"},
    "ind_nonheating_kgce_per_m2": {"zh": "单位面积非采暖能耗 (kgce/m²)", "en": "Non-heating energy per floor area (kgce/m²)"},
    "ind_water_m3": {"zh": "用水总量 (m³)", "en": "Total water (m³)"},
    "ind_t_co2": {"zh": "碳排放总量 (tCO₂)", "en": "Total CO₂ (tCO₂)"},
    "ind_tce": {"zh": "综合能耗 (tce)", "en": "Total energy (tce)"},
    # ranking columns
    "col_rank": {"zh": "同类排名", "en": "Peer rank"},
    "col_peers": {"zh": "同类数", "en": "Peers"},
    "col_name": {"zh": "机构名称", "en": "Institution"},
    "col_id": {"zh": "编号", "en": "ID"},
    "col_value": {"zh": "指标值", "en": "Value"},
    "col_yoy": {"zh": "同比 (%)", "en": "Year on year (%)"},
    "col_yoy_note": {"zh": "同比说明", "en": "Year-on-year note"},
    "yoy_tce": {"zh": "综合能耗同比", "en": "Total energy, year on year"},
    "yoy_like_for_like": {"zh": "按两年数据均完整的单位计", "en": "institutions complete in both years"},
    "col_level": {"zh": "定额水平", "en": "Quota level"},
    "col_estimated": {"zh": "估算占比 (%)", "en": "Estimated (%)"},
    "col_source": {"zh": "数据来源", "en": "Reported by"},
    "source_own": {"zh": "本级", "en": "this level"},
    "lvl_exceeds": {"zh": "超约束值", "en": "Above constraint"},
    "lvl_advanced": {"zh": "先进值以内", "en": "Within advanced"},
    "lvl_general": {"zh": "通用值以内", "en": "Within general"},
    "lvl_no_data": {"zh": "无数据", "en": "No data"},
    "lvl_partial": {"zh": "年度未完", "en": "Year not complete"},
    "advanced": {"zh": "先进值", "en": "Advanced"},
    "general": {"zh": "通用值", "en": "General"},
    "lvl_constraint": {"zh": "约束值以内", "en": "Within constraint"},
    "lvl_baseline": {"zh": "基准值以内", "en": "Within baseline"},
    "lvl_guide": {"zh": "引导值以内", "en": "Within guide"},
    "lvl_none": {"zh": "无定额", "en": "No quota"},
    # institution page
    "meters": {"zh": "计量表具", "en": "Meters"},
    "daily": {"zh": "日用量", "en": "Daily consumption"},
    "hourly": {"zh": "逐时用量", "en": "Hourly consumption"},
    "subitems": {"zh": "分项用电", "en": "Electricity sub-items"},
    "indicators": {"zh": "指标与定额", "en": "Indicators and quotas"},
    "data_quality": {"zh": "数据质量", "en": "Data quality"},
    "completeness": {"zh": "完整率 (近7天)", "en": "Completeness (last 7 days)"},
    "estimated_share": {"zh": "估算占比", "en": "Estimated share"},
    "offline": {"zh": "离线", "en": "offline"},
    "online": {"zh": "在线", "en": "online"},
    "last_seen": {"zh": "最后数据", "en": "Last sample"},
    "choose_institution": {"zh": "选择机构", "en": "Choose an institution"},
    "floor_area": {"zh": "建筑面积 (m²)", "en": "Floor area (m²)"},
    "heated_area": {"zh": "采暖面积 (m²)", "en": "Heated area (m²)"},
    "occupants": {"zh": "用能人数", "en": "Occupants"},
    "value": {"zh": "数值", "en": "Value"},
    "constraint": {"zh": "约束值", "en": "Constraint"},
    "baseline": {"zh": "基准值", "en": "Baseline"},
    "guide": {"zh": "引导值", "en": "Guide"},
    "quota_values": {"zh": "定额值", "en": "Quota values"},
    "date": {"zh": "日期", "en": "Date"},
    "quantity": {"zh": "用量", "en": "Quantity"},
    # overview
    "totals": {"zh": "总量与双控目标", "en": "Totals and dual-control targets"},
    "target": {"zh": "目标", "en": "Target"},
    "actual": {"zh": "实际", "en": "Actual"},
    "projection": {"zh": "年末预测", "en": "Year-end projection"},
    "ytd": {"zh": "年度累计", "en": "Year to date"},
    "trend_month": {"zh": "逐月趋势 (kgce)", "en": "Monthly trend (kgce)"},
    "split_energy": {"zh": "按能源品种", "en": "By energy type"},
    "split_category": {"zh": "按机构类别", "en": "By category"},
    "institutions_count": {"zh": "机构数", "en": "Institutions"},
    "no_target": {"zh": "未设目标", "en": "no target set"},
    # alerts
    "open_alerts": {"zh": "未处理告警", "en": "Open alerts"},
    "past_alerts": {"zh": "历史告警（已解除）", "en": "Past alerts (resolved)"},
    "sev_info": {"zh": "提示", "en": "info"},
    "sev_warning": {"zh": "预警", "en": "warning"},
    "sev_critical": {"zh": "严重", "en": "critical"},
    "scope": {"zh": "对象", "en": "Scope"},
    "acknowledge": {"zh": "确认", "en": "Acknowledge"},
    "acknowledged": {"zh": "已确认", "en": "Acknowledged"},
    "severity": {"zh": "级别", "en": "Severity"},
    "message": {"zh": "内容", "en": "Message"},
    "period": {"zh": "期间", "en": "Period"},
    "first_seen": {"zh": "首次发现", "en": "First seen"},
    # reports
    "monthly_report": {"zh": "月度统计报表", "en": "Monthly report"},
    "carbon_ledger": {"zh": "年度碳排放台账", "en": "Annual carbon ledger"},
    "download": {"zh": "下载", "en": "Download"},
    "month": {"zh": "月份", "en": "Month"},
    # savings verification
    "project": {"zh": "项目", "en": "Project"},
    "avoided": {"zh": "节能量", "en": "Avoided energy"},
    "baseline_model": {"zh": "基准模型", "en": "Baseline model"},
    "mv_model": {"zh": "模型", "en": "Model"},
    "mv_n": {"zh": "基准期数据点数", "en": "Baseline points"},
    "mv_r2": {"zh": "R²", "en": "R²"},
    "mv_cvrmse": {"zh": "CV(RMSE)", "en": "CV(RMSE)"},
    "mv_nmbe": {"zh": "NMBE", "en": "NMBE"},
    "mv_meets_ashrae14": {"zh": "符合 ASHRAE 14", "en": "Meets ASHRAE Guideline 14"},
    "mv_adjusted_baseline": {"zh": "调整后基准能耗", "en": "Adjusted baseline"},
    "mv_reporting_actual": {"zh": "报告期实际能耗", "en": "Reporting-period actual"},
    "mv_avoided": {"zh": "节能量", "en": "Avoided energy"},
    "mv_avoided_fraction": {"zh": "节能率", "en": "Savings fraction"},
    "mv_avoided_low90": {"zh": "节能量 90% 下限", "en": "Avoided, 90 % low"},
    "mv_avoided_high90": {"zh": "节能量 90% 上限", "en": "Avoided, 90 % high"},
    "mv_normalized_savings": {"zh": "标准化节能量", "en": "Normalized savings"},
    "mv_payment_cny": {"zh": "应付节能效益 (元)", "en": "Payment (CNY)"},
    "adjusted_baseline": {"zh": "调整后基准", "en": "Adjusted baseline"},
    "no_mv_projects": {"zh": "暂无节能量核定项目（将项目文件放入 mv/ 目录）。",
                       "en": "No savings-verification projects (put project files in an mv/ folder)."},
    # shell
    "menu": {"zh": "菜单", "en": "Menu"},
    "nav_compare": {"zh": "对比", "en": "Compare"},
    "wall_mode": {"zh": "大屏", "en": "Wall screen"},
    "export_xlsx": {"zh": "导出 Excel", "en": "Export Excel"},
    "preparing": {"zh": "正在生成，请稍候…", "en": "Preparing the file …"},
    # periods, charts
    "partial_period": {"zh": "未完整期间（截至当前）", "en": "Partial period (to now)"},
    "partial_month": {"zh": "本月未完，截至 {date}", "en": "Month not complete: to {date}"},
    "partial_day": {"zh": "今日未完，截至 {time}", "en": "Day not complete: to {time}"},
    "date_range": {"zh": "日期范围", "en": "Date range"},
    "yoy_overlay": {"zh": "叠加去年同期", "en": "Overlay last year"},
    "this_period": {"zh": "本期", "en": "This period"},
    "last_year_period": {"zh": "去年同期", "en": "Same dates last year"},
    "change": {"zh": "变化", "en": "Change"},
    "period_analysis": {"zh": "期间分析与同比", "en": "Period and year on year"},
    "energy_tce_chart": {"zh": "综合能耗", "en": "Total energy"},
    "water_chart": {"zh": "用水量", "en": "Water"},
    "co2_chart": {"zh": "碳排放", "en": "CO₂ emissions"},
    "cost": {"zh": "费用", "en": "Cost"},
    "cost_chart": {"zh": "能源费用", "en": "Energy cost"},
    "cost_by_energy": {"zh": "按能源品种的费用", "en": "Cost by energy type"},
    "cost_note": {"zh": "费用：有账单的按账单金额，其余按区域电价/水价/气价（{tariffs}）计算。",
                  "en": "Cost: billed amounts where a bill covers the day, else metered use at the region's "
                        "tariff ({tariffs})."},
    "cost_unpriced": {"zh": "未定价的用量（无账单、无价格）未计入：{share} 的记录。",
                      "en": "Use without a bill or a tariff is not priced: {share} of the rows."},
    "no_tariffs": {"zh": "未设价格", "en": "no tariffs set"},
    "daily_tce": {"zh": "逐日综合能耗", "en": "Daily total energy"},
    "monthly_tce": {"zh": "逐月综合能耗", "en": "Monthly total energy"},
    # alerts page
    "filter_severity": {"zh": "级别", "en": "Severity"},
    "filter_rule": {"zh": "规则", "en": "Rule"},
    "filter_scope": {"zh": "对象", "en": "Scope"},
    "filter_status": {"zh": "状态", "en": "Status"},
    "filter_period": {"zh": "首次发现", "en": "First seen"},
    "status_open": {"zh": "未处理", "en": "Open"},
    "status_acknowledged": {"zh": "已确认", "en": "Acknowledged"},
    "status_resolved": {"zh": "已解除", "en": "Resolved"},
    "ack_selected": {"zh": "确认所选", "en": "Acknowledge selected"},
    "select_all": {"zh": "全选", "en": "Select all"},
    "alerts_shown": {"zh": "显示 {n} 条（共 {total} 条）", "en": "{n} shown of {total}"},
    "acknowledged_n": {"zh": "已确认 {n} 条告警。", "en": "{n} alert(s) acknowledged."},
    "ack_refused": {"zh": "{n} 条无权确认，未处理。", "en": "{n} alert(s) refused: no access."},
    "value_limit": {"zh": "数值 / 限值", "en": "Value / limit"},
    "meters_offline_group": {"zh": "{n} 块计量表离线", "en": "{n} meters offline"},
    "never_reported": {"zh": "从未上报", "en": "never reported"},
    "silent_since": {"zh": "自 {time} 起无数据", "en": "silent since {time}"},
    "rule_meter_offline": {"zh": "计量表离线", "en": "Meter offline"},
    "rule_data_completeness": {"zh": "数据完整率", "en": "Data completeness"},
    "rule_abnormal_night_load": {"zh": "夜间基础负荷异常", "en": "Abnormal night load"},
    "rule_abnormal_holiday_load": {"zh": "节假日用能异常", "en": "Abnormal holiday use"},
    "rule_step_change": {"zh": "用量突变", "en": "Step change"},
    "rule_submeter_imbalance": {"zh": "分项不平衡", "en": "Sub-meter imbalance"},
    "rule_dual_control_exceeded": {"zh": "超双控目标", "en": "Dual-control target exceeded"},
    "rule_projected_breach": {"zh": "预计超目标", "en": "Projected breach"},
    "rule_projected_near_limit": {"zh": "预计接近目标", "en": "Projected near the limit"},
    "rule_quota_constraint_exceeded": {"zh": "超能耗定额", "en": "Above the quota standard"},
    "period_all": {"zh": "全部", "en": "Any time"},
    "period_7d": {"zh": "近 7 天", "en": "Last 7 days"},
    "period_30d": {"zh": "近 30 天", "en": "Last 30 days"},
    "period_365d": {"zh": "近一年", "en": "Last year"},
    # savings verification
    "mv_periods": {"zh": "期间", "en": "Periods"},
    "mv_baseline_period": {"zh": "基准期", "en": "Baseline period"},
    "mv_reporting_period": {"zh": "报告期", "en": "Reporting period"},
    "mv_verdict": {"zh": "核定结论", "en": "Verdict"},
    "mv_verified": {"zh": "节能量核定通过", "en": "Savings verified"},
    "mv_not_verified": {"zh": "节能量未能核定", "en": "Savings not verified"},
    "mv_why_verified": {"zh": "节能 {avoided}（{fraction}），90% 置信区间 {low} ~ {high} 高于零；基准模型符合 ASHRAE 14。",
                        "en": "{avoided} avoided ({fraction}); the 90 % interval {low} to {high} is above zero and "
                              "the baseline model meets ASHRAE Guideline 14."},
    "mv_why_interval_zero": {"zh": "节能不显著：90% 置信区间 {low} ~ {high} 包含零。",
                             "en": "No significant savings: the 90 % interval {low} to {high} includes zero."},
    "mv_why_increase": {"zh": "能耗上升：90% 置信区间 {low} ~ {high} 低于零。",
                        "en": "Consumption increased: the 90 % interval {low} to {high} is below zero."},
    "mv_why_ashrae": {"zh": "基准模型不符合 ASHRAE 14：CV(RMSE) {cvrmse}（上限 {cvrmse_max}），NMBE {nmbe}（上限 ±{nmbe_max}）。",
                      "en": "The baseline model does not meet ASHRAE Guideline 14: CV(RMSE) {cvrmse} (limit "
                            "{cvrmse_max}), NMBE {nmbe} (limit ±{nmbe_max})."},
    # the same labels for a water-saving contract (合同节水管理: energy water, in m3)
    "mv_adjusted_baseline_water": {"zh": "调整后基准用水量", "en": "Adjusted baseline (water)"},
    "mv_reporting_actual_water": {"zh": "报告期实际用水量", "en": "Reporting-period actual (water)"},
    "mv_avoided_water": {"zh": "节水量", "en": "Water saved"},
    "mv_avoided_fraction_water": {"zh": "节水率", "en": "Water savings fraction"},
    "mv_avoided_low90_water": {"zh": "节水量 90% 下限", "en": "Water saved, 90 % low"},
    "mv_avoided_high90_water": {"zh": "节水量 90% 上限", "en": "Water saved, 90 % high"},
    "mv_normalized_savings_water": {"zh": "标准化节水量", "en": "Normalized water savings"},
    "mv_payment_cny_water": {"zh": "应付节水效益 (元)", "en": "Payment (CNY)"},
    "mv_savings_water": {"zh": "节水量", "en": "Water savings"},
    "mv_verified_water": {"zh": "节水量核定通过", "en": "Water savings verified"},
    "mv_not_verified_water": {"zh": "节水量未能核定", "en": "Water savings not verified"},
    "mv_why_verified_water": {"zh": "节水 {avoided}（{fraction}），90% 置信区间 {low} ~ {high} 高于零；基准模型符合 ASHRAE 14。",
                              "en": "{avoided} of water saved ({fraction}); the 90 % interval {low} to {high} is above "
                                    "zero and the baseline model meets ASHRAE Guideline 14."},
    "mv_why_interval_zero_water": {"zh": "节水不显著：90% 置信区间 {low} ~ {high} 包含零。",
                                   "en": "No significant water savings: the 90 % interval {low} to {high} includes "
                                         "zero."},
    "mv_why_increase_water": {"zh": "用水量上升：90% 置信区间 {low} ~ {high} 低于零。",
                              "en": "Water use increased: the 90 % interval {low} to {high} is below zero."},
    "mv_findings": {"zh": "需要注意", "en": "To note"},
    "mv_fit": {"zh": "模型拟合", "en": "Model fit"},
    "mv_savings": {"zh": "节能量", "en": "Savings"},
    "mv_interval90": {"zh": "90% 置信区间", "en": "90 % interval"},
    "mv_option": {"zh": "IPMVP 方案", "en": "IPMVP option"},
    "mv_days": {"zh": "{n} 天", "en": "{n} days"},
    "yes": {"zh": "是", "en": "yes"},
    "no": {"zh": "否", "en": "no"},
    "model_mean": {"zh": "常数模型（日均值）", "en": "Constant (mean daily use)"},
    "model_hdd": {"zh": "采暖度日模型", "en": "Heating degree-day model"},
    "model_cdd": {"zh": "制冷度日模型", "en": "Cooling degree-day model"},
    "model_hdd_cdd": {"zh": "采暖 + 制冷度日模型", "en": "Heating and cooling degree-day model"},
    "model_day_type": {"zh": "区分工作日", "en": "with working / non-working days"},
    "model_occupancy": {"zh": "含在用人数", "en": "with occupancy"},
    "model_heating_base": {"zh": "采暖基准温度 {t}", "en": "heating balance point {t}"},
    "model_cooling_base": {"zh": "制冷基准温度 {t}", "en": "cooling balance point {t}"},
    "finding_baseline_short": {"zh": "基准期过短", "en": "Baseline too short"},
    "finding_baseline_under_a_year": {"zh": "基准期不足一年", "en": "Baseline shorter than a year"},
    "finding_coverage": {"zh": "数据覆盖不足", "en": "Too little data coverage"},
    "finding_gaps": {"zh": "数据有缺口", "en": "Gaps in the data"},
    "finding_extrapolation": {"zh": "报告期温度超出基准期范围（模型外推）", "en": "Reporting temperatures beyond the baseline's (extrapolation)"},
    "finding_ashrae14_not_met": {"zh": "基准模型不符合 ASHRAE 14", "en": "Baseline model does not meet ASHRAE Guideline 14"},
    # comparison
    "compare_institutions": {"zh": "机构对比（最多 5 家）", "en": "Compare institutions (up to 5)"},
    "compare_pick": {"zh": "选择要对比的机构", "en": "Choose institutions to compare"},
    "compare_too_many": {"zh": "最多对比 5 家机构。", "en": "At most 5 institutions can be compared."},
    "compare_monthly": {"zh": "逐月综合能耗对比", "en": "Monthly total energy, side by side"},
    # wall screen
    "wall_title": {"zh": "公共机构能耗监测大屏", "en": "Energy monitoring wall screen"},
    "wall_updated": {"zh": "更新于 {time}，每 {s} 秒轮换", "en": "Updated {time}; rotates every {s} s"},
    # year-end assessment (节能考核), notice (通报), key energy users, plan indicators
    "nav_assessment": {"zh": "考核", "en": "Assessment"},
    "assessment": {"zh": "年度节能考核", "en": "Year-end assessment"},
    "assess_view": {"zh": "对象", "en": "Assessed"},
    "assess_institutions": {"zh": "公共机构", "en": "Institutions"},
    "assess_regions": {"zh": "下级地区", "en": "Regions below"},
    "assess_download": {"zh": "下载考核结果 (xlsx)", "en": "Assessment (xlsx)"},
    "notice_download": {"zh": "下载通报 (xlsx)", "en": "Notice (xlsx)"},
    "notice_print": {"zh": "打印通报", "en": "Printable notice"},
    "assess_rank": {"zh": "排名", "en": "Rank"},
    "parent_region": {"zh": "上级地区", "en": "Parent region"},
    "score": {"zh": "得分", "en": "Score"},
    "grade": {"zh": "等级", "en": "Grade"},
    "breakdown_hint": {"zh": "点击表中一行，查看其得分明细。", "en": "Click a row to see how its score is made up."},
    "key_user": {"zh": "重点用能单位", "en": "Key energy user"},
    "key_users": {"zh": "重点用能单位", "en": "Key energy users"},
    "key_users_rule": {"zh": "年综合能耗 ≥ {tce} tce，执行更严格的规则", "en": "annual energy ≥ {tce} tce, stricter rules"},
    "crit_targets": {"zh": "双控目标", "en": "Targets"},
    "crit_quota": {"zh": "定额水平", "en": "Quota level"},
    "crit_submissions": {"zh": "按时报送", "en": "On-time submissions"},
    "crit_data_quality": {"zh": "数据质量", "en": "Data quality"},
    "crit_yoy": {"zh": "同比变化", "en": "Year on year"},
    "not_applicable": {"zh": "不适用", "en": "not applicable"},
    "targets_met": {"zh": "完成目标 {met}/{n} 项", "en": "{met} of {n} targets met"},
    "periods_on_time": {"zh": "按时 {ok}/{n} 期（{review}审核，完整率 ≥ {pct}）",
                        "en": "{ok} of {n} periods on time ({review} review, completeness ≥ {pct})"},
    "periods_members": {"zh": "成员单位按时 {ok}/{n} 期", "en": "{ok} of {n} member periods on time"},
    "quota_members": {"zh": "成员单位定额平均得分率 {v}；超约束值单位 {n} 家",
                      "en": "members' mean quota share {v}; {n} above a constraint"},
    "quality_members": {"zh": "成员单位数据质量平均得分率 {v}", "en": "members' mean data-quality share {v}"},
    "review_monthly": {"zh": "按月", "en": "monthly"},
    "review_quarterly": {"zh": "按季", "en": "quarterly"},
    "late_periods": {"zh": "未按时", "en": "late"},
    "estimated_vs": {"zh": "估算占比 {v}（上限 {max}）", "en": "estimated share {v} (at most {max})"},
    "alerts_vs": {"zh": "未处理数据质量告警 {n} 条（上限 {max}）", "en": "{n} open data-quality alerts (at most {max})"},
    "yoy_value": {"zh": "{ind} 同比 {v}", "en": "{ind} {v} on last year"},
    "yoy_current_incomplete": {"zh": "本年数据不完整，不计同比", "en": "this year incomplete: no comparison"},
    "yoy_previous_incomplete": {"zh": "上年数据不完整，不计同比", "en": "last year incomplete: no comparison"},
    "yoy_no_previous": {"zh": "上年无数据，不计同比", "en": "no data last year: no comparison"},
    "veto": {"zh": "否决项", "en": "Veto"},
    "veto_target_total": {"zh": "未完成总量目标", "en": "total target missed"},
    "veto_target_intensity": {"zh": "未完成强度目标", "en": "intensity target missed"},
    "veto_constraint": {"zh": "超过定额约束值", "en": "above a quota constraint"},
    "points": {"zh": "分", "en": "pts"},
    "plan_indicators": {"zh": "规划指标", "en": "Plan indicators"},
    "plan_of_year": {"zh": "{plan}规划指标（{year} 年）", "en": "{plan} plan indicators ({year})"},
    "plan_base": {"zh": "基期 {year}", "en": "base {year}"},
    "plan_target": {"zh": "规划目标", "en": "Plan target"},
    "plan_expected": {"zh": "按进度应达", "en": "Due by now"},
    "plan_progress": {"zh": "完成进度", "en": "Progress"},
    "plan_on_track": {"zh": "进度达标", "en": "On track"},
    "plan_renewable_share": {"zh": "可再生能源电力占比", "en": "Renewable share of electricity"},
    "plan_baseline_share": {"zh": "达到基准值的单位占比", "en": "Institutions at or below baseline"},
    "plan_change": {"zh": "较基期变化", "en": "Change on base year"},
    "plan_no_base_value": {"zh": "无基期值", "en": "no base-year value"},
    "plan_no_data": {"zh": "无数据", "en": "no data"},
    "plan_not_after_base_year": {"zh": "不晚于基期年", "en": "not after the base year"},
    "no_complete_year": {"zh": "尚无完整年度可考核。", "en": "No complete year to assess yet."},
    # monthly submissions (统计填报) and their review
    "nav_filing": {"zh": "填报", "en": "Submission"},
    "nav_progress": {"zh": "填报进度", "en": "Submission progress"},
    "filing_title": {"zh": "月度能源资源消费填报", "en": "Monthly energy and resource submission"},
    "filing_submit": {"zh": "提交", "en": "Submit"},
    "filing_template": {"zh": "Excel 模板", "en": "Excel template"},
    "filing_template_download": {"zh": "下载填报模板 (xlsx)", "en": "Download the template (xlsx)"},
    "filing_upload": {"zh": "拖放或点击上传填好的模板", "en": "Drop or click to upload the filled template"},
    "filing_metered": {"zh": "计量表采集（只读）", "en": "From the meters (read-only)"},
    "filing_entry": {"zh": "手工填报", "en": "Entered figures"},
    "filing_converted": {"zh": "折算", "en": "Converted"},
    "filing_last_year": {"zh": "上年同月", "en": "Same month last year"},
    "filing_area_changed": {"zh": "本月建筑面积（有变化时填写）", "en": "Floor area this month (if changed)"},
    "filing_occupants_changed": {"zh": "本月用能人数（有变化时填写）", "en": "Occupants this month (if changed)"},
    "filing_reason": {"zh": "请填写原因", "en": "Write the reason"},
    "filing_warnings": {"zh": "需要说明原因的提示", "en": "Warnings that need a reason"},
    "filing_need_reasons": {"zh": "请为每条提示填写原因后再提交。", "en": "Write a reason for every warning, then submit again."},
    "filing_done": {"zh": "已提交，等待审核。", "en": "Submitted: waiting for review."},
    "registered": {"zh": "登记信息", "en": "Registered"},
    "reviewer_comment": {"zh": "审核意见", "en": "Reviewer's comment"},
    "status": {"zh": "状态", "en": "Status"},
    "energy": {"zh": "能源品种", "en": "Energy"},
    "unit": {"zh": "单位", "en": "Unit"},
    "cost_cny": {"zh": "费用（元）", "en": "Cost (CNY)"},
    "row": {"zh": "第几行", "en": "Row"},
    "audit_trail": {"zh": "审计记录", "en": "Audit trail"},
    "audit_at": {"zh": "时间（UTC）", "en": "When (UTC)"},
    "audit_who": {"zh": "操作人", "en": "Who"},
    "audit_source": {"zh": "来源", "en": "Source"},
    "audit_action": {"zh": "操作", "en": "Action"},
    "audit_period_start": {"zh": "期间", "en": "Period"},
    "audit_energy": {"zh": "能源", "en": "Energy"},
    "audit_field": {"zh": "字段", "en": "Field"},
    "audit_old": {"zh": "原值", "en": "Old"},
    "audit_new": {"zh": "新值", "en": "New"},
    "audit_reason": {"zh": "原因 / 意见", "en": "Reason / comment"},
    "progress_title": {"zh": "填报进度", "en": "Submission progress"},
    "progress_deadline": {"zh": "截止日期 {date}，剩余 {days} 天", "en": "Deadline {date}: {days} days left"},
    "progress_overdue": {"zh": "截止日期 {date}，已逾期 {days} 天", "en": "Deadline {date}: {days} days overdue"},
    "progress_expected": {"zh": "应报", "en": "Due"},
    "status_missing": {"zh": "未填报", "en": "Not submitted"},
    "status_submitted": {"zh": "已提交", "en": "Submitted"},
    "status_approved": {"zh": "已审核", "en": "Approved"},
    "status_returned": {"zh": "已退回", "en": "Returned"},
    "approve": {"zh": "审核通过", "en": "Approve"},
    "return": {"zh": "退回", "en": "Return"},
    "comment": {"zh": "意见", "en": "Comment"},
    "progress_todo": {"zh": "待处理单位", "en": "Institutions to follow up"},
    # login
    "username": {"zh": "用户名", "en": "Username"},
    "password": {"zh": "密码", "en": "Password"},
    "login": {"zh": "登录", "en": "Log in"},
    "login_failed": {"zh": "用户名或密码错误。", "en": "Wrong username or password."},
    "login_wait": {"zh": "登录失败次数过多，请 {s} 秒后再试。", "en": "Too many failed logins; try again in {s} s."},
}


def t(key: str, lang: str | None, **values: object) -> str:
    """The label `key` in `lang` ('zh' or 'en'); English, then the key, as fallbacks.
    `values` fill the label's `{name}` fields."""
    entry = TEXT.get(key)
    if entry is None:
        return key
    text = entry.get(lang or DEFAULT_LANG) or entry.get("en") or key
    return text.format(**values) if values else text


def norm_lang(lang: str | None) -> str:
    """'zh' or 'en' (anything else becomes the default)."""
    return lang if lang in LANGS else DEFAULT_LANG


# -- the one home of formats: numbers, units, percentages, times ------------------------------
MISSING = "—"  # a value that cannot be computed (no data, no denominator)

# units as the code writes them (quota files, alerts, the vocabulary) -> (Chinese, English) display
UNITS: dict[str, tuple[str, str]] = {
    "m3": ("m³", "m³"), "m2": ("m²", "m²"), "m3/person": ("m³/人", "m³/person"),
    "kgce/m2": ("kgce/m²", "kgce/m²"), "kgce/person": ("kgce/人", "kgce/person"),
    "kgCO2/m2": ("kgCO₂/m²", "kgCO₂/m²"), "kgCO2": ("kgCO₂", "kgCO₂"), "tCO2": ("tCO₂", "tCO₂"),
    "t": ("t", "t"), "tce": ("tce", "tce"), "kgce": ("kgce", "kgce"), "kWh": ("kWh", "kWh"), "GJ": ("GJ", "GJ"),
    "kg": ("kg", "kg"), "h": ("小时", "h"), "%": ("%", "%"), "CNY": ("元", "CNY"), "kWh/d": ("kWh/天", "kWh/d"),
    "m3/d": ("m³/天", "m³/d"), "kWh/h": ("kWh/h", "kWh/h"), "m3/h": ("m³/h", "m³/h"), "persons": ("人", "persons"),
}
# ASCII unit spellings inside sentences (alert messages), longest first so m3/person wins over m3
_UNIT_WORDS = sorted((u for u in UNITS if any(ch in u for ch in "/23") or u == "tCO2"), key=len, reverse=True)
_UNIT_RE = re.compile("|".join(rf"(?<![A-Za-z0-9_]){re.escape(u)}(?![A-Za-z0-9_²³])" for u in _UNIT_WORDS))
_ZH_BIG = ((1e12, "万亿"), (1e8, "亿"), (1e4, "万"))
_EN_BIG = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def unit(u: str | None, lang: str | None) -> str:
    """A unit as people read it: m³, kgce/m², m³/人 (Chinese) or m³/person (English)."""
    if not u:
        return ""
    pair = UNITS.get(u)
    return u if pair is None else pair[0 if norm_lang(lang) == "zh" else 1]


def typeset(text: str, lang: str | None) -> str:
    """Units written in ASCII inside a sentence (m3/person, kgce/m2, tCO2) typeset for `lang`."""
    return _UNIT_RE.sub(lambda m: unit(m.group(0), lang), text or "")


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v))


def num(v: object, digits: int = 1) -> str:
    """`v` with thousands separators and `digits` decimals ("—" when missing)."""
    return MISSING if _missing(v) else f"{float(v):,.{digits}f}"  # type: ignore[arg-type]


def compact(v: object, lang: str | None, digits: int = 3) -> str:
    """A large number in few characters: 1.25万 / 3.57亿 in Chinese, 12.5k / 3.57M in
    English; `digits` significant digits; "—" when missing."""
    if _missing(v):
        return MISSING
    x = float(f"{float(v):.{digits}g}")  # type: ignore[arg-type]  # rounded first: 99,999 is 10万, not 10.0万
    scale, suffix = next(((size, sfx) for size, sfx in (_ZH_BIG if norm_lang(lang) == "zh" else _EN_BIG)
                          if abs(x) >= size), (1.0, ""))
    y = x / scale
    if y == 0:
        return "0"
    decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(y)))))
    text = f"{y:,.{decimals}f}"
    if "." in text:  # 3.50万 -> 3.5万, 5.00 -> 5
        text = text.rstrip("0").rstrip(".")
    return text + suffix


def pct(fraction: object, lang: str | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.1096 -> "10.96%" (zh) / "10.96 %" (en)."""
    if _missing(fraction):
        return MISSING
    value = f"{float(fraction) * 100 + 0.0:,.{digits}f}"  # type: ignore[arg-type]
    if float(value.replace(",", "")) == 0:
        value = f"{0:.{digits}f}"  # no "-0.00"
    return f"{value}%" if norm_lang(lang) == "zh" else f"{value} %"


def quantity(v: object, u: str | None, lang: str | None, digits: int = 1) -> str:
    """A value with its unit: "1,234.5 kWh", "12.3 m³/人", "—"."""
    return MISSING if _missing(v) else f"{num(v, digits)} {unit(u, lang)}".strip()


def local_time(value: object, tz: str, lang: str | None, with_time: bool = True) -> str:
    """An instant (ISO 8601 text or a timestamp; naive means UTC) as local time of the
    registry's zone: "2026-03-01 08:00" ("—" when missing or unreadable)."""
    if value is None or value == "":
        return MISSING
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return str(value)
    if pd.isna(ts):
        return MISSING
    ts = (ts.tz_localize("UTC") if ts.tzinfo is None else ts).tz_convert(tz)
    return ts.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def month_label(ts: pd.Timestamp, lang: str | None) -> str:
    """A month as people write it: 2026年3月 / Mar 2026."""
    return f"{ts.year}年{ts.month}月" if norm_lang(lang) == "zh" else ts.strftime("%b %Y")
