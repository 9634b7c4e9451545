"""Chinese / English labels for the dashboard.

Every visible string goes through `t(key, lang)`. The language is kept in the
browser (a `dcc.Store` in local storage) and is an input of every page callback,
so switching language re-renders the current page at once without losing filters.
A missing key falls back to English, then to the key itself, so a new label never
breaks a page.
"""

from __future__ import annotations

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
    "col_level": {"zh": "定额水平", "en": "Quota level"},
    "col_estimated": {"zh": "估算占比 (%)", "en": "Estimated (%)"},
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
    # login
    "username": {"zh": "用户名", "en": "Username"},
    "password": {"zh": "密码", "en": "Password"},
    "login": {"zh": "登录", "en": "Log in"},
    "login_failed": {"zh": "用户名或密码错误。", "en": "Wrong username or password."},
    "login_wait": {"zh": "登录失败次数过多，请 {s} 秒后再试。", "en": "Too many failed logins; try again in {s} s."},
}


def t(key: str, lang: str | None) -> str:
    """The label `key` in `lang` ('zh' or 'en'); English, then the key, as fallbacks."""
    entry = TEXT.get(key)
    if entry is None:
        return key
    return entry.get(lang or DEFAULT_LANG) or entry.get("en") or key


def norm_lang(lang: str | None) -> str:
    """'zh' or 'en' (anything else becomes the default)."""
    return lang if lang in LANGS else DEFAULT_LANG
